"""Registered workers, read-only."""

from __future__ import annotations

from django.contrib import admin
from django.utils import timezone
from django.utils.html import format_html
from django.utils.safestring import SafeString

from django_retrytasks.admin.base import ReadOnly, ReadPages
from django_retrytasks.admin.formatting import moment_text, relative_text
from django_retrytasks.models import Worker


@admin.register(Worker)
class WorkerAdmin(ReadOnly, ReadPages, admin.ModelAdmin):
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
