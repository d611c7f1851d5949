"""The operator's view of jobs: read-only rows, actions through the service layer."""

from __future__ import annotations

from typing import Any

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest

from django_retrytasks import services
from django_retrytasks.models import Attempt, Job


class AttemptInline(admin.TabularInline):
    model = Attempt
    extra = 0
    can_delete = False
    fields = (
        "number",
        "started_at",
        "finished_at",
        "outcome",
        "worker_name",
        "error_type",
        "error_message",
        "traceback",
        "retry_at",
        "decision",
    )
    readonly_fields = fields

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


class PendingRetryFilter(admin.SimpleListFilter):
    title = "pending retry"
    parameter_name = "pending_retry"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return [("yes", "Pending retries")]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Job]) -> QuerySet[Job]:
        if self.value() == "yes":
            return queryset.filter(status="todo", attempts__gt=0)
        return queryset


def _report(
    modeladmin: admin.ModelAdmin, request: HttpRequest, verb: str, report: services.ActionReport
) -> None:
    if report.done:
        modeladmin.message_user(request, f"{verb} {len(report.done)} job(s).", messages.SUCCESS)
    for job_id, reason in report.skipped.items():
        modeladmin.message_user(request, f"Skipped job #{job_id}: {reason}.", messages.WARNING)


@admin.register(Job)
class JobAdmin(admin.ModelAdmin):
    list_display = (
        "id",
        "task_name",
        "status",
        "attempts",
        "queue",
        "priority",
        "lock",
        "scheduled_at",
    )
    list_filter = ("status", PendingRetryFilter, "queue", "task_name")
    search_fields = ("=id", "task_name", "lock", "queueing_lock")
    inlines = [AttemptInline]
    actions = ["retry_now", "cancel"]

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> list[str]:
        return [field.name for field in Job._meta.fields]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_retry_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm("django_retrytasks.retry_job")

    def has_cancel_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm("django_retrytasks.cancel_job")

    @admin.action(description="Retry now", permissions=["retry"])
    def retry_now(self, request: HttpRequest, queryset: QuerySet[Job]) -> None:
        report = services.retry_now(queryset.values_list("pk", flat=True))
        _report(self, request, "Scheduled to run now:", report)

    @admin.action(description="Cancel", permissions=["cancel"])
    def cancel(self, request: HttpRequest, queryset: QuerySet[Job]) -> None:
        report = services.cancel(queryset.values_list("pk", flat=True))
        _report(self, request, "Cancelled", report)
