"""The job page's attempt history, and the read-only base of every model admin here."""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.http import HttpRequest
from django.utils.html import format_html

from django_retrytasks.admin.formatting import EMPTY, duration_text, first_line, moment_text
from django_retrytasks.models import Attempt


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
