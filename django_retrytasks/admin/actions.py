"""The job list's actions (also on the job page, Django >= 6.1): each one through
:mod:`django_retrytasks.store.operations`, each one saying what it did and what it skipped, and
recorded in each job's admin history."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Sequence
from typing import Any

from django.contrib import admin, messages
from django.contrib.admin.models import CHANGE, DELETION, LogEntry
from django.db.models import Model, QuerySet
from django.http import HttpRequest, HttpResponseRedirect
from django.urls import reverse

from django_retrytasks.admin.formatting import ids_text, jobs_text
from django_retrytasks.models import Job
from django_retrytasks.store import operations

try:  # Django >= 6.1 offers actions on the object's own page too.
    from django.contrib.admin.options import ActionLocation

    ON_LIST_AND_JOB_PAGE: dict[str, Any] = {
        "location": [ActionLocation.CHANGE_LIST, ActionLocation.CHANGE_FORM]
    }
except ImportError:  # pragma: no cover - older Django: the actions are on the list only
    ON_LIST_AND_JOB_PAGE = {}


def report_action(
    request: HttpRequest, action: str, done_text: str, report: operations.ActionReport
) -> None:
    """Say what an action did and what it skipped, grouped by the reason for the skip."""
    if report.done:
        messages.success(
            request,
            f"{action}: {jobs_text(len(report.done))} {done_text} ({ids_text(report.done)}).",
        )
    else:
        messages.warning(request, f"{action}: no job changed.")
    skipped_by_reason: dict[str, list[int]] = defaultdict(list)
    for job_id, reason in report.skipped.items():
        skipped_by_reason[reason].append(job_id)
    for reason, ids in skipped_by_reason.items():
        messages.warning(
            request, f"{action}: skipped {jobs_text(len(ids))} because {reason}: {ids_text(ids)}."
        )


def record_in_history(
    request: HttpRequest, changed: Sequence[Model], action: str, *, log_flag: int = CHANGE
) -> None:
    """Record an action in the admin history of each row it changed."""
    if changed and request.user.pk is not None:  # the admin only lets staff in
        LogEntry.objects.log_actions(
            user_id=request.user.pk,
            queryset=changed,
            action_flag=log_flag,
            change_message=action,
        )


class JobActions(admin.ModelAdmin):
    """Retry now, Cancel, Abort and Delete (finished jobs only), each with its permission."""

    # --- permissions: look, and act only through the actions -------------------------------

    def has_retry_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm("django_retrytasks.retry_job")

    def has_cancel_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm("django_retrytasks.cancel_job")

    def has_abort_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm("django_retrytasks.abort_job")

    def has_delete_finished_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm("django_retrytasks.delete_job")

    def run_action(
        self,
        request: HttpRequest,
        job_ids: Sequence[int],
        service: Callable[[list[int]], operations.ActionReport],
        *,
        action: str,
        done_text: str,
        log_flag: int = CHANGE,
    ) -> operations.ActionReport:
        """Run a service on jobs, say what it did, and record it in each job's admin history."""
        ids = list(job_ids)
        jobs_by_id = {job.pk: job for job in Job.objects.filter(pk__in=ids).only("id", "task_name")}
        report = service(ids)
        report_action(request, action, done_text, report)
        changed = [jobs_by_id[job_id] for job_id in report.done if job_id in jobs_by_id]
        record_in_history(request, changed, action, log_flag=log_flag)
        return report

    @staticmethod
    def selected_ids(queryset: QuerySet[Job]) -> list[int]:
        return list(queryset.values_list("pk", flat=True))

    @admin.action(description="Retry now", permissions=["retry"], **ON_LIST_AND_JOB_PAGE)
    def retry_now(self, request: HttpRequest, queryset: QuerySet[Job]) -> None:
        self.run_action(
            request,
            self.selected_ids(queryset),
            operations.retry_now,
            action="Retry now",
            done_text="will run at once",
        )

    @admin.action(description="Cancel", permissions=["cancel"], **ON_LIST_AND_JOB_PAGE)
    def cancel(self, request: HttpRequest, queryset: QuerySet[Job]) -> None:
        self.run_action(
            request,
            self.selected_ids(queryset),
            operations.cancel,
            action="Cancel",
            done_text="cancelled",
        )

    @admin.action(description="Abort", permissions=["abort"], **ON_LIST_AND_JOB_PAGE)
    def abort(self, request: HttpRequest, queryset: QuerySet[Job]) -> None:
        self.run_action(
            request,
            self.selected_ids(queryset),
            operations.request_abort,
            action="Abort",
            done_text="asked to stop (they end aborted when their task gives up)",
        )

    @admin.action(
        description="Delete (finished jobs only)",
        permissions=["delete_finished"],
        **ON_LIST_AND_JOB_PAGE,
    )
    def delete_finished(
        self, request: HttpRequest, queryset: QuerySet[Job]
    ) -> HttpResponseRedirect | None:
        report = self.run_action(
            request,
            self.selected_ids(queryset),
            operations.delete_finished,
            action="Delete",
            done_text="deleted with their history",
            log_flag=DELETION,
        )
        on_job_page = request.resolver_match and request.resolver_match.url_name == (
            "django_retrytasks_job_change"
        )
        if report.done and on_job_page:
            return HttpResponseRedirect(reverse("admin:django_retrytasks_job_changelist"))
        return None
