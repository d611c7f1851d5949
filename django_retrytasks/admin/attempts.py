"""The job page's attempt history."""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.db import connections
from django.db.models import QuerySet
from django.http import HttpRequest
from django.utils.html import format_html

from django_retrytasks.admin import long_values
from django_retrytasks.admin.base import ReadOnly
from django_retrytasks.admin.formatting import EMPTY, duration_text, moment_text
from django_retrytasks.models import Attempt

#: Attempts the job page lists, the newest (``manage.py retrytasks show`` lists every one).
ATTEMPTS_SHOWN = 20


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

    def get_queryset(self, request: HttpRequest) -> QuerySet[Attempt]:
        """The newest :data:`ATTEMPTS_SHOWN` attempts, their long texts cut in the database."""
        attempts = long_values.with_attempt_heads(super().get_queryset(request))
        object_id = (
            request.resolver_match.kwargs.get("object_id") if request.resolver_match else None
        )
        if object_id is not None and str(object_id).isdigit():
            newest = (
                Attempt.objects.filter(job_id=int(object_id))
                .order_by("-number", "-id")
                .values_list("id", flat=True)[:ATTEMPTS_SHOWN]
            )
            if connections[attempts.db].features.allow_sliced_subqueries_with_in:
                attempts = attempts.filter(pk__in=newest)
            else:  # MySQL and MariaDB take no LIMIT in an IN subquery: read the ids first
                attempts = attempts.filter(pk__in=list(newest))
        return attempts

    # The history is part of the job: whoever may view the job sees it.
    def has_view_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return request.user.has_perm("django_retrytasks.view_job")

    @admin.display(description="duration")
    def duration_text(self, attempt: Attempt) -> str:
        seconds = attempt.duration
        return EMPTY if seconds is None else duration_text(seconds)

    @admin.display(description="error")
    def error(self, attempt: Attempt) -> str:
        return long_values.error_html(attempt)

    @admin.display(description="retry decision")
    def decision_text(self, attempt: Attempt) -> str:
        if attempt.retry_at is None:
            return attempt.decision or EMPTY
        return format_html(
            "{}<br><small>next run {}</small>", attempt.decision, moment_text(attempt.retry_at)
        )

    @admin.display(description="traceback")
    def traceback_details(self, attempt: Attempt) -> str:
        return long_values.traceback_html(attempt)
