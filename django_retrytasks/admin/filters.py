"""The job list's filters."""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.db.models import Q, QuerySet
from django.http import HttpRequest

from django_retrytasks import dashboard
from django_retrytasks.models import Job, JobStatus


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
