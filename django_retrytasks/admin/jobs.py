"""The job list and the job page: jobs read-only, every change through an action."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta

from django.contrib import admin
from django.db.models import Q, QuerySet
from django.http import HttpRequest, HttpResponse
from django.urls import URLPattern, path
from django.utils import timezone
from django.utils.html import format_html, format_html_join
from django.utils.safestring import mark_safe
from django.views.decorators.http import require_POST

from django_retrytasks import dashboard, tasks
from django_retrytasks.admin.attempts import AttemptInline, ReadOnly
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
    pretty_json,
    relative_text,
)
from django_retrytasks.models import Attempt, Job, JobStatus
from django_retrytasks.retry import RetryStrategy

#: How many runs ahead the job page previews.
PREVIEW_RUNS = 5


@admin.register(Job)
class JobAdmin(ReadOnly, DashboardViews):
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
