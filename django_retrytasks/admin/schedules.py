"""Periodic schedules: the ones declared in code, their next tick and last job; Pause, Resume
and Run now, each with its permission (``pause_schedule``, ``run_schedule``)."""

from __future__ import annotations

import functools
import json
import math
from collections.abc import Callable
from typing import Any

from django.contrib import admin, messages
from django.core.exceptions import ImproperlyConfigured
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse
from django.urls import reverse
from django.utils import timezone
from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString

from django_retrytasks import cron, periodic, tasks
from django_retrytasks.admin.actions import ON_LIST_AND_JOB_PAGE, record_in_history
from django_retrytasks.admin.base import ReadOnly, ReadPages
from django_retrytasks.admin.formatting import EMPTY, moment_text, relative_text
from django_retrytasks.models import Schedule
from django_retrytasks.store import operations
from django_retrytasks.store import periodic as store

#: How many ticks ahead a schedule's page shows.
UPCOMING_TICKS = 5
NOT_DECLARED = "not declared in the code: no worker defers it"


def declared_schedules() -> dict[tuple[str, str], periodic.PeriodicSchedule]:
    """The schedules this process's code declares, by key (a bad setting: only the decorators')."""
    try:
        found = periodic.declared_schedules(tasks.app)
    except ImproperlyConfigured:  # reported by the system check E005
        found = list(tasks.app.schedules.values())
    return {schedule.key: schedule for schedule in found}


@admin.register(Schedule)
class ScheduleAdmin(ReadOnly, ReadPages, admin.ModelAdmin):
    """Schedules read-only; operators pause, resume and run them through the actions."""

    list_display = ("name", "cron", "time_zone", "state", "next_tick", "last_tick_text", "last")
    list_display_links = ("name",)
    list_select_related = ("last_job",)
    ordering = ("task_name", "periodic_id")
    search_fields = ("task_name", "periodic_id")
    actions = ["pause", "resume", "run_now"]
    fields = (
        "name",
        "cron",
        "time_zone",
        "arguments",
        "state",
        "upcoming",
        "last_tick_text",
        "last",
        "created_at",
        "active_since",
    )
    readonly_fields = fields

    # --- pages ------------------------------------------------------------------------------

    def changelist_view(self, request: HttpRequest, extra_context: Any = None) -> HttpResponse:
        if request.method == "GET" and self.has_view_or_change_permission(request):
            # A schedule declared in code is listed before any worker has stored it.
            store.sync_schedules(declared_schedules(), now=timezone.now())
        return super().changelist_view(request, extra_context)

    @staticmethod
    def declared(row: Schedule) -> periodic.PeriodicSchedule | None:
        return declared_schedules().get((row.task_name, row.periodic_id))

    # --- columns ----------------------------------------------------------------------------

    @admin.display(description="schedule", ordering="task_name")
    def name(self, row: Schedule) -> str:
        return str(row)

    @admin.display(description="cron")
    def cron(self, row: Schedule) -> str:
        declared = self.declared(row)
        return str(declared.cron) if declared is not None else EMPTY

    @admin.display(description="time zone")
    def time_zone(self, row: Schedule) -> str:
        declared = self.declared(row)
        return declared.zone_name if declared is not None else EMPTY

    @admin.display(description="arguments")
    def arguments(self, row: Schedule) -> str:
        declared = self.declared(row)
        if declared is None:
            return EMPTY
        return json.dumps({periodic.TIMESTAMP: "<the tick>", **declared.kwargs}, sort_keys=True)

    @admin.display(description="state")
    def state(self, row: Schedule) -> SafeString | str:
        if self.declared(row) is None:
            return NOT_DECLARED
        if row.paused_at is not None:
            return format_html(
                '<span title="{}">paused {}</span>',
                moment_text(row.paused_at),
                relative_text(row.paused_at, timezone.now()),
            )
        return "active"

    @admin.display(description="next tick")
    def next_tick(self, row: Schedule) -> SafeString | str:
        ticks = self._upcoming(row, 1)
        if not ticks:
            return EMPTY
        moment = cron.moment(ticks[0], self._zone(row))
        return format_html(
            '<span title="{}">{}</span>',
            moment.isoformat(sep=" "),
            relative_text(moment, timezone.now()),
        )

    @admin.display(description=f"next {UPCOMING_TICKS} ticks")
    def upcoming(self, row: Schedule) -> SafeString | str:
        ticks = self._upcoming(row, UPCOMING_TICKS)
        if not ticks:
            return EMPTY
        zone = self._zone(row)
        return format_html(
            "<ol>{}</ol>",
            format_html_join(
                "", "<li>{}</li>", ((cron.moment(tick, zone).isoformat(sep=" "),) for tick in ticks)
            ),
        )

    @admin.display(description="last tick", ordering="last_tick")
    def last_tick_text(self, row: Schedule) -> SafeString | str:
        if row.last_tick is None:
            return EMPTY
        moment = cron.moment(row.last_tick)
        return format_html(
            '<span title="{}">{}</span>', moment_text(moment), relative_text(moment, timezone.now())
        )

    @admin.display(description="last job")
    def last(self, row: Schedule) -> SafeString | str:
        job = row.last_job
        if job is None:
            return EMPTY
        return format_html(
            '<a href="{}">#{}</a> {}',
            reverse("admin:django_retrytasks_job_change", args=[job.pk]),
            job.pk,
            job.status,
        )

    def _zone(self, row: Schedule) -> Any:
        declared = self.declared(row)
        return declared.zone() if declared is not None else timezone.get_current_timezone()

    def _upcoming(self, row: Schedule, count: int) -> list[int]:
        declared = self.declared(row)
        if declared is None or row.paused_at is not None:
            return []
        return declared.upcoming(timezone.now(), last_tick=row.last_tick, count=count)

    # --- actions ----------------------------------------------------------------------------

    def has_pause_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm("django_retrytasks.pause_schedule")

    def has_run_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm("django_retrytasks.run_schedule")

    def run_action(
        self,
        request: HttpRequest,
        queryset: QuerySet[Schedule],
        act: Callable[[list[int]], operations.ActionReport],
        *,
        action: str,
        done_text: str,
    ) -> None:
        """Act on the selected schedules, say what was done and skipped, record it in history."""
        rows = {row.pk: row for row in queryset}
        report = act(list(rows))
        if report.done:
            names = ", ".join(str(rows[pk]) for pk in report.done)
            messages.success(request, f"{action}: {names} {done_text}.")
        else:
            messages.warning(request, f"{action}: no schedule changed.")
        for pk, reason in report.skipped.items():
            messages.warning(request, f"{action}: skipped {rows[pk]} because {reason}.")
        record_in_history(request, [rows[pk] for pk in report.done], action)

    @admin.action(description="Pause", permissions=["pause"], **ON_LIST_AND_JOB_PAGE)
    def pause(self, request: HttpRequest, queryset: QuerySet[Schedule]) -> None:
        self.run_action(
            request,
            queryset,
            lambda ids: store.pause(ids, now=timezone.now()),
            action="Pause",
            done_text="paused: no worker defers their ticks until they are resumed",
        )

    @admin.action(description="Resume", permissions=["pause"], **ON_LIST_AND_JOB_PAGE)
    def resume(self, request: HttpRequest, queryset: QuerySet[Schedule]) -> None:
        self.run_action(
            request,
            queryset,
            lambda ids: store.resume(ids, now=timezone.now()),
            action="Resume",
            done_text="resumed from now (the ticks missed while paused are not caught up)",
        )

    @admin.action(description="Run now", permissions=["run"], **ON_LIST_AND_JOB_PAGE)
    def run_now(self, request: HttpRequest, queryset: QuerySet[Schedule]) -> None:
        now = timezone.now()
        declared = {row.pk: self.declared(row) for row in queryset}
        runnable = {
            pk: functools.partial(schedule.job_spec, math.floor(now.timestamp()))
            for pk, schedule in declared.items()
            if schedule is not None
        }

        def act(ids: list[int]) -> operations.ActionReport:
            report = store.run_now(runnable, now=now)
            for pk in ids:
                if pk not in runnable:
                    report.skipped[pk] = f"it is {NOT_DECLARED}"
            return report

        self.run_action(
            request, queryset, act, action="Run now", done_text="deferred a job to run at once"
        )
