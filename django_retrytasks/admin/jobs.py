"""The job list and the job page: jobs read-only, every change through an action."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any

from django.contrib import admin, messages
from django.contrib.admin.views.main import SEARCH_VAR, ChangeList
from django.core.paginator import Paginator
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse
from django.urls import URLPattern, path
from django.utils import timezone
from django.utils.html import format_html, format_html_join
from django.utils.safestring import mark_safe
from django.views.decorators.http import require_POST

from django_retrytasks import limits, tasks
from django_retrytasks.admin import job_list, long_values, search
from django_retrytasks.admin.attempts import ATTEMPTS_SHOWN, AttemptInline
from django_retrytasks.admin.base import ReadOnly, ReadPages
from django_retrytasks.admin.dashboard_page import DashboardViews
from django_retrytasks.admin.filters import (
    ErrorTypeFilter,
    PendingRetryFilter,
    QueueFilter,
    TaskNameFilter,
)
from django_retrytasks.admin.formatting import (
    EMPTY,
    duration_text,
    first_line,
    max_runs,
    moment_text,
    relative_text,
)
from django_retrytasks.models import Attempt, Job, JobStatus
from django_retrytasks.retry import RetryStrategy

#: How many runs ahead the job page previews.
PREVIEW_RUNS = 5


@admin.register(Job)
class JobAdmin(ReadOnly, ReadPages, long_values.Downloads, DashboardViews):
    list_display = (
        "id",
        "task_name",
        "status_badge",
        "attempts_text",
        "queue",
        "priority",
        "lock",
        "next_run",
        "latest_error",
    )
    list_display_links = ("id", "task_name")
    list_filter = (
        "status",
        PendingRetryFilter,
        QueueFilter,
        TaskNameFilter,
        ErrorTypeFilter,
    )
    search_help_text = (
        f"Up to {limits.MAX_SEARCH_WORDS} words, each found in the task name and locks, or in "
        "the task name and error of one attempt (type, start of the message); #42 is job 42."
    )
    ordering = ("-id",)
    list_per_page = 50
    # A second COUNT(*) of the whole table on every filtered page is not worth it.
    show_full_result_count = False
    inlines = [AttemptInline]
    actions = ["retry_now", "cancel", "abort", "delete_finished"]
    fieldsets = (
        (
            None,
            {
                "fields": (
                    "id",
                    "task_name",
                    "status_badge",
                    "attempts_text",
                    "queue",
                    "priority",
                    "lock",
                    "queueing_lock",
                )
            },
        ),
        (
            "Schedule",
            {
                "fields": (
                    "next_run",
                    "scheduled_at",
                    "schedule_preview",
                    "created_at",
                    "started_at",
                    "finished_at",
                    "worker",
                )
            },
        ),
        ("Arguments and result", {"fields": ("arguments", "result", "history_note")}),
        (
            "Control",
            {"fields": ("abort_requested", "held", "snoozes", "consecutive_losses", "backend")},
        ),
    )
    readonly_fields = tuple(str(name) for _, options in fieldsets for name in options["fields"])

    class Media:
        css = {"all": ("django_retrytasks/admin.css",)}

    # --- queries --------------------------------------------------------------------------

    def get_queryset(self, request: HttpRequest) -> QuerySet[Job]:
        return super().get_queryset(request).defer(*job_list.UNLISTED)

    def get_changelist(self, request: HttpRequest, **kwargs: Any) -> type[ChangeList]:
        return job_list.JobChangeList

    def get_search_fields(self, request: HttpRequest) -> tuple[str, ...]:
        # Searched by get_search_results below; a non-empty value shows the search box.
        return ("task_name",)

    def get_search_results(
        self, request: HttpRequest, queryset: QuerySet[Job], search_term: str
    ) -> tuple[QuerySet[Job], bool]:
        """See :mod:`django_retrytasks.admin.search`; a refused search lists nothing."""
        if not search_term.strip():
            return queryset, False
        try:
            return search.apply(search.parse(search_term), queryset), False
        except search.SearchRefused as refusal:
            messages.warning(request, str(refusal))
            return queryset.none(), False

    def get_paginator(
        self, request: HttpRequest, queryset: Any, per_page: int, *args: Any, **kwargs: Any
    ) -> Paginator:
        if request.GET.get(SEARCH_VAR, "").strip():
            return search.CappedPaginator(queryset, per_page, *args, **kwargs)
        return super().get_paginator(request, queryset, per_page, *args, **kwargs)

    def get_changelist_instance(self, request: HttpRequest) -> Any:
        changelist = super().get_changelist_instance(request)
        if getattr(changelist.paginator, "capped", False):
            messages.info(
                request,
                f"More than {search.COUNT_CAP:,} jobs match: the list pages through the newest "
                f"{search.COUNT_CAP:,}. Add a word or a filter to narrow it.",
            )
        return changelist

    # --- columns and fields ---------------------------------------------------------------

    @admin.display(description="status", ordering="status")
    def status_badge(self, job: Job) -> str:
        label = "pending retry" if job.is_pending_retry else job.get_status_display()
        if job.held:  # a poison job: lost with its worker too many times in a row
            label = f"{label}, held"
        return format_html('<span class="rt-status rt-status-{}">{}</span>', job.status, label)

    @admin.display(description="attempts", ordering="attempts")
    def attempts_text(self, job: Job) -> str:
        most = max_runs(job.task_name)
        if most is None:
            return str(job.attempts)
        return format_html(
            '<span title="{} finished runs of at most {}">{} / {}</span>',
            job.attempts,
            most,
            job.attempts,
            most,
        )

    @admin.display(description="next run", ordering="scheduled_at")
    def next_run(self, job: Job) -> str:
        now = timezone.now()
        if job.status == JobStatus.DOING:
            started = job.started_at or now
            return format_html(
                '<span title="started {}">running for {}</span>',
                moment_text(started),
                duration_text((now - started).total_seconds()),
            )
        if job.status != JobStatus.TODO:
            return EMPTY
        if job.scheduled_at is None:
            return "now"
        when = relative_text(job.scheduled_at, now)
        if job.scheduled_at <= now:
            when = f"due {when}" if when != "now" else "now"
        return format_html('<span title="{}">{}</span>', moment_text(job.scheduled_at), when)

    @admin.display(description="last error")
    def latest_error(self, job: Job) -> str:
        error_type = getattr(job, "latest_error_type", None) or ""
        head = first_line(getattr(job, "latest_error_head", None) or "", 72)
        if not error_type and not head:
            return EMPTY
        return format_html('<span class="rt-error"><strong>{}</strong> {}</span>', error_type, head)

    @admin.display(description="arguments")
    def arguments(self, job: Job) -> str:
        if not hasattr(job, "arguments_length"):  # read with the return value, once
            long_values.job_value_heads(job)
        return long_values.json_value_html(job, "arguments")

    @admin.display(description="return value")
    def result(self, job: Job) -> str:
        if job.status != JobStatus.SUCCEEDED:
            return EMPTY
        if not hasattr(job, "result_length"):
            long_values.job_value_heads(job)
        return long_values.json_value_html(job, "result")

    @admin.display(description="history")
    def history_note(self, job: Job) -> str:
        runs = Attempt.objects.filter(job_id=job.pk).count()
        if runs <= ATTEMPTS_SHOWN:
            return f"{runs} runs, all listed below." if runs != 1 else "1 run, listed below."
        return (
            f"{runs:,} runs: the newest {ATTEMPTS_SHOWN} are listed below; "
            f"manage.py retrytasks show {job.pk} lists them all."
        )

    @admin.display(description="schedule preview")
    def schedule_preview(self, job: Job) -> str:
        """The next runs the strategy would give if every run failed at once."""
        task = tasks.app.tasks.get(job.task_name)
        if task is None:
            return "The task is not registered in this process: the job fails when run."
        if job.status not in (JobStatus.TODO, JobStatus.DOING):
            return f"None: the job is {job.get_status_display()}."
        strategy = task.retry
        if strategy is None:
            return "No retries: the task has no retry strategy."
        if isinstance(strategy, RetryStrategy) and not strategy.is_deterministic:
            return "Not known in advance: the strategy adds random jitter to its waits."
        waits = strategy.schedule_preview(attempts=job.attempts, count=PREVIEW_RUNS)
        if waits is None:
            return "Not known in advance: the strategy decides at each failure."
        now = timezone.now()
        next_number = job.attempts + 1
        if job.status == JobStatus.DOING:
            lines = [(f"run {next_number}", "running now", "")]
            moment = now
        else:
            moment = max(job.scheduled_at or now, now)
            lines = [(f"run {next_number}", moment_text(moment), relative_text(moment, now))]
        for offset, wait in enumerate(waits, start=1):
            moment = moment + timedelta(seconds=min(wait, 10**9))
            lines.append(
                (
                    f"run {next_number + offset}",
                    f"{moment_text(moment)} ({duration_text(wait)} after run {next_number + offset - 1} fails)",
                    "",
                )
            )
        items = format_html_join("", "<li><strong>{}</strong>: {} {}</li>", lines)
        if len(waits) < PREVIEW_RUNS:
            ending = mark_safe("<li>then no more retries: the strategy's maximum is reached</li>")
        else:
            ending = mark_safe("<li>…</li>")
        return format_html(
            '<ol class="rt-preview">{}{}</ol><p class="help">If each run failed at once; '
            "a run's own duration moves the later ones.</p>",
            items,
            ending,
        )

    # --- the dashboard ----------------------------------------------------------------------

    def get_urls(self) -> list[URLPattern]:
        def wrap(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
            return self.admin_site.admin_view(view)

        own = [
            path("dashboard/", wrap(self.dashboard_view), name="django_retrytasks_job_dashboard"),
            path(
                "dashboard/retry-group/",
                wrap(require_POST(self.retry_group_view)),
                name="django_retrytasks_job_retry_group",
            ),
            path(
                "<path:object_id>/download/<str:what>/",
                wrap(self.download_view),
                name="django_retrytasks_job_download",
            ),
        ]
        return own + super().get_urls()
