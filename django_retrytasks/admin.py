"""The operator's console: jobs read-only, every change through :mod:`django_retrytasks.store.operations`.

The job list shows pending retries with their next run and latest error; the job page
shows the arguments, the attempt history with tracebacks and the retries to come; the
dashboard sums up queues, retries coming due and recent failures. Every action needs its
own permission (``retry_job``, ``cancel_job``, ``abort_job``, ``delete_job``); no one adds
or edits a job here. Everything that comes from a job is escaped (``format_html`` and the
template engine's autoescaping).
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from typing import Any

from django.contrib import admin, messages
from django.contrib.admin.models import CHANGE, DELETION, LogEntry
from django.core.exceptions import PermissionDenied
from django.db.models import Q, QuerySet
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import URLPattern, path, reverse
from django.utils import timezone
from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString, mark_safe
from django.views.decorators.http import require_POST

from django_retrytasks import conf, dashboard, tasks
from django_retrytasks.models import Attempt, Job, JobStatus, Worker
from django_retrytasks.retry import RetryStrategy
from django_retrytasks.store import operations

try:  # Django >= 6.1 offers actions on the object's own page too.
    from django.contrib.admin.options import ActionLocation

    ON_LIST_AND_JOB_PAGE: dict[str, Any] = {
        "location": [ActionLocation.CHANGE_LIST, ActionLocation.CHANGE_FORM]
    }
except ImportError:  # pragma: no cover - older Django: the actions are on the list only
    ON_LIST_AND_JOB_PAGE = {}

#: How many runs ahead the job page previews.
PREVIEW_RUNS = 5
#: Job ids named one by one in an action's message; the rest are counted.
IDS_IN_MESSAGE = 20
#: The window of the dashboard's failure groups.
FAILURE_WINDOW = timedelta(hours=24)
EMPTY = "—"


# --- formatting -----------------------------------------------------------------------------


def duration_text(seconds: float) -> str:
    """A short duration: "45 s", "4 min", "2.5 h", "3 d"."""
    seconds = abs(seconds)
    if seconds < 59.5:
        return f"{seconds:.0f} s" if seconds >= 1 else f"{seconds:.2g} s"
    if seconds < 3570:  # what would round to 60 min reads "1 h"
        return f"{round(seconds / 60)} min"
    if seconds < 86400:
        return f"{seconds / 3600:.2g} h"
    return f"{seconds / 86400:.3g} d"


def relative_text(moment: datetime, now: datetime) -> str:
    """ "in 4 min" for the future, "3 min ago" for the past, "now" within a second."""
    seconds = (moment - now).total_seconds()
    if abs(seconds) < 1:
        return "now"
    return f"in {duration_text(seconds)}" if seconds > 0 else f"{duration_text(seconds)} ago"


def moment_text(moment: datetime) -> str:
    return timezone.localtime(moment).strftime("%Y-%m-%d %H:%M:%S")


def first_line(text: str, limit: int = 140) -> str:
    line = text.strip().splitlines()[0] if text.strip() else ""
    return line if len(line) <= limit else line[: limit - 1] + "…"


def ids_text(ids: Sequence[int]) -> str:
    ids = sorted(ids)
    shown = ", ".join(f"#{job_id}" for job_id in ids[:IDS_IN_MESSAGE])
    rest = len(ids) - IDS_IN_MESSAGE
    return shown + (f" and {rest} more" if rest > 0 else "")


def jobs_text(count: int) -> str:
    return f"{count} job" if count == 1 else f"{count} jobs"


def max_runs(task_name: str) -> int | None:
    """The most runs the task's strategy allows a job, or None when unlimited or not known.

    Known for tasks without retries (1) and for :class:`RetryStrategy` with a
    ``max_attempts`` (that many retries, so one more run).
    """
    task = tasks.app.tasks.get(task_name)
    if task is None:
        return None
    if task.retry is None:
        return 1
    if isinstance(task.retry, RetryStrategy) and task.retry.max_attempts is not None:
        return task.retry.max_attempts + 1
    return None


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


class ReadOnly:
    """No one adds, edits or deletes rows through Django's own views.

    State changes go through the actions and so through :mod:`django_retrytasks.store.operations`
    (Django's delete view, for one, would delete running jobs).
    """

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


# --- the job page's attempt history ---------------------------------------------------------


class AttemptInline(ReadOnly, admin.TabularInline):
    model = Attempt
    extra = 0
    can_delete = False
    show_change_link = False
    verbose_name = "attempt"
    verbose_name_plural = "attempt history"
    fields = (
        "number",
        "started_at",
        "duration_text",
        "outcome",
        "worker_name",
        "error",
        "decision_text",
        "traceback_details",
    )
    readonly_fields = fields
    ordering = ("number", "id")

    # The history is part of the job: whoever may view the job sees it.
    def has_view_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return request.user.has_perm("django_retrytasks.view_job")

    @admin.display(description="duration")
    def duration_text(self, attempt: Attempt) -> str:
        seconds = attempt.duration
        return EMPTY if seconds is None else duration_text(seconds)

    @admin.display(description="error")
    def error(self, attempt: Attempt) -> str:
        if not attempt.error_type and not attempt.error_message:
            return EMPTY
        head = first_line(attempt.error_message)
        if attempt.error_message.strip() == head:
            return format_html("<strong>{}</strong>: {}", attempt.error_type, head)
        return format_html(
            '<details class="rt-collapsible"><summary><strong>{}</strong>: {}</summary>'
            "<pre>{}</pre></details>",
            attempt.error_type,
            head,
            attempt.error_message,
        )

    @admin.display(description="retry decision")
    def decision_text(self, attempt: Attempt) -> str:
        if attempt.retry_at is None:
            return attempt.decision or EMPTY
        return format_html(
            "{}<br><small>next run {}</small>", attempt.decision, moment_text(attempt.retry_at)
        )

    @admin.display(description="traceback")
    def traceback_details(self, attempt: Attempt) -> str:
        if not attempt.traceback.strip():
            return EMPTY
        return format_html(
            '<details class="rt-collapsible rt-traceback"><summary>{}</summary><pre>{}</pre></details>',
            first_line(attempt.traceback.strip().splitlines()[-1], 80),
            attempt.traceback,
        )


# --- the job list's filters -----------------------------------------------------------------


class PendingRetryFilter(admin.SimpleListFilter):
    title = "pending retry"
    parameter_name = "pending_retry"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return [("yes", "Pending retries"), ("no", "Other jobs")]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Job]) -> QuerySet[Job]:
        pending = Q(status=JobStatus.TODO, attempts__gt=0)
        if self.value() == "yes":
            return queryset.filter(pending)
        if self.value() == "no":
            return queryset.exclude(pending)
        return queryset


class ErrorTypeFilter(admin.SimpleListFilter):
    """Jobs with an attempt that raised the chosen error type."""

    title = "error type"
    parameter_name = "error_type"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return [(name, name) for name in dashboard.error_types()]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Job]) -> QuerySet[Job]:
        if self.value():
            return queryset.filter(pk__in=dashboard.jobs_with_error_type(self.value() or ""))
        return queryset


class ColumnValuesFilter(admin.SimpleListFilter):
    """A choice per distinct value of a column, the choices cached a few seconds."""

    field_name = ""

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return [(value, value) for value in dashboard.distinct_values(Job, self.field_name)]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Job]) -> QuerySet[Job]:
        if self.value():
            return queryset.filter(**{self.field_name: self.value()})
        return queryset


class QueueFilter(ColumnValuesFilter):
    title = "queue"
    parameter_name = field_name = "queue"


class TaskNameFilter(ColumnValuesFilter):
    title = "task"
    parameter_name = field_name = "task_name"


# --- jobs -----------------------------------------------------------------------------------


@admin.register(Job)
class JobAdmin(ReadOnly, admin.ModelAdmin):
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
        "Job id, task name, lock, queueing lock, or text of an error (type, message)."
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
        ("Arguments and result", {"fields": ("arguments", "result")}),
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
        return dashboard.with_latest_error(super().get_queryset(request))

    def get_search_fields(self, request: HttpRequest) -> tuple[str, ...]:
        # Searched by get_search_results below; a non-empty value shows the search box.
        return ("task_name",)

    def get_search_results(
        self, request: HttpRequest, queryset: QuerySet[Job], search_term: str
    ) -> tuple[QuerySet[Job], bool]:
        """Match every word: ``#42`` is job 42; other words are looked for in the job id, the
        task name, the locks, and the error type and message of every attempt."""
        for word in search_term.split():
            if word.startswith("#") and word[1:].isdigit():
                # "#42" is job 42 and nothing else: no scan of the error texts.
                queryset = queryset.filter(pk=int(word[1:]) if int(word[1:]) < 2**63 else 0)
                continue
            # IN (subquery), not EXISTS: under an OR the database hashes the matching
            # attempts once instead of probing them for every job.
            in_errors = Attempt.objects.filter(
                Q(error_message__icontains=word) | Q(error_type__icontains=word)
            ).values("job_id")
            matches = (
                Q(task_name__icontains=word)
                | Q(lock__icontains=word)
                | Q(queueing_lock__icontains=word)
                | Q(pk__in=in_errors)
            )
            if word.isdigit() and int(word) < 2**63:
                matches |= Q(pk=int(word))
            queryset = queryset.filter(matches)
        return queryset, False

    # --- permissions: look, and act only through the actions -------------------------------

    def has_retry_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm("django_retrytasks.retry_job")

    def has_cancel_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm("django_retrytasks.cancel_job")

    def has_abort_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm("django_retrytasks.abort_job")

    def has_delete_finished_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm("django_retrytasks.delete_job")

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
        return format_html("<pre>{}</pre>", pretty_json(job.task_kwargs))

    @admin.display(description="return value")
    def result(self, job: Job) -> str:
        if job.status != JobStatus.SUCCEEDED:
            return EMPTY
        return format_html("<pre>{}</pre>", pretty_json(job.return_value))

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

    # --- actions: each one through the store, each one reporting what it did ---------------

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
        if changed and request.user.pk is not None:  # the admin only lets staff in
            LogEntry.objects.log_actions(
                user_id=request.user.pk,
                queryset=changed,
                action_flag=log_flag,
                change_message=action,
            )
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
        ]
        return own + super().get_urls()

    def dashboard_view(self, request: HttpRequest) -> HttpResponse:
        if not self.has_view_permission(request):
            raise PermissionDenied
        now = timezone.now()
        buckets = dashboard.retries_due(now=now)
        status_counts = dashboard.counts_by_status()
        context = {
            **self.admin_site.each_context(request),
            "title": "Retry tasks dashboard",
            "opts": self.opts,
            "app_label": self.opts.app_label,
            "now": now,
            "status_tiles": [
                (status, label, status_counts[status]) for status, label in JobStatus.choices
            ],
            "queues": dashboard.counts_by_queue(),
            "statuses": Job._meta.get_field("status").choices,
            "chart": due_chart(buckets),
            "due_total": sum(bucket.count for bucket in buckets),
            "failure_groups": dashboard.failure_groups(since=now - FAILURE_WINDOW),
            "failure_window_hours": int(FAILURE_WINDOW.total_seconds() // 3600),
            "workers": dashboard.workers(
                now=now, heartbeat_timeout=conf.get_settings().heartbeat_timeout
            ),
            "can_retry": self.has_retry_permission(request),
        }
        return TemplateResponse(request, "admin/django_retrytasks/dashboard.html", context)

    def retry_group_view(self, request: HttpRequest) -> HttpResponse:
        """Retry every job of a dashboard failure group that ended ``failed``."""
        if not (self.has_view_permission(request) and self.has_retry_permission(request)):
            raise PermissionDenied
        task_name = request.POST.get("task_name", "")
        error_type = request.POST.get("error_type", "")
        since = timezone.now() - FAILURE_WINDOW
        ids = list(
            dashboard.failed_jobs_in_group(
                task_name=task_name, error_type=error_type, since=since
            ).values_list("pk", flat=True)
        )
        if ids:
            self.run_action(
                request,
                ids,
                operations.retry_now,
                action=f"Retry {task_name} / {error_type}",
                done_text="will run at once",
            )
        else:
            messages.warning(
                request,
                f"Retry {task_name} / {error_type}: no failed job left in this group.",
            )
        return HttpResponseRedirect(reverse("admin:django_retrytasks_job_dashboard"))


def pretty_json(value: Any) -> str:
    return json.dumps(value, indent=2, sort_keys=True, ensure_ascii=False)


#: Geometry of the "retries coming due" chart, in SVG user units.
CHART_WIDTH = 720
CHART_HEIGHT = 160
CHART_BASELINE = 130


def due_chart(buckets: Sequence[dashboard.Bucket]) -> list[dict[str, Any]]:
    """Bars of the SVG chart of retries coming due, with their position, size and labels."""
    tallest = max((bucket.count for bucket in buckets), default=0) or 1
    slot = CHART_WIDTH / len(buckets)
    bars = []
    for index, bucket in enumerate(buckets):
        height = round((CHART_BASELINE - 20) * bucket.count / tallest, 1)
        if bucket.start is None:
            label, title = "overdue", f"{bucket.count} already due"
        else:
            minutes = round((bucket.start - buckets[0].end).total_seconds() / 60)
            label = f"+{minutes} min"
            title = (
                f"{bucket.count} due {timezone.localtime(bucket.start):%H:%M}"
                f" to {timezone.localtime(bucket.end):%H:%M}"
            )
        bars.append(
            {
                "x": round(index * slot + 4, 1),
                "width": round(slot - 8, 1),
                "y": round(CHART_BASELINE - height, 1),
                "count_y": round(CHART_BASELINE - height - 4, 1),
                "height": height,
                "center": round(index * slot + slot / 2, 1),
                "count": bucket.count,
                "label": label,
                "title": title,
                "overdue": bucket.start is None,
            }
        )
    return bars


# --- workers --------------------------------------------------------------------------------


@admin.register(Worker)
class WorkerAdmin(ReadOnly, admin.ModelAdmin):
    """Registered workers, read-only: rows come and go with the worker processes."""

    list_display = ("name", "host", "pid", "queues", "concurrency", "started_at", "heartbeat")
    readonly_fields = (
        "name",
        "host",
        "pid",
        "queues",
        "concurrency",
        "started_at",
        "last_heartbeat",
    )
    ordering = ("name",)

    @admin.display(description="last heartbeat", ordering="last_heartbeat")
    def heartbeat(self, worker: Worker) -> SafeString:
        return format_html(
            '<span title="{}">{}</span>',
            moment_text(worker.last_heartbeat),
            relative_text(worker.last_heartbeat, timezone.now()),
        )
