"""Long values on the job page: shown cut, and whole as a download for staff who may view the job.

A job's arguments and return value, and an attempt's error message and traceback, can be
megabytes. The page reads only their start (the end, for a traceback) from the database, with
their length, shows at most :data:`SHOWN` characters of each with a marker saying how much was
cut, and links the whole: ``<job id>/download/<what>/`` answers it as an attachment, read
straight from the database (a stored JSON value nested too deep for Python is downloaded as
it is stored), to users with the ``view_job`` permission.
"""

from __future__ import annotations

import json
from typing import Any

from django.contrib import admin
from django.core.exceptions import PermissionDenied
from django.db.models import QuerySet
from django.http import Http404, HttpRequest, HttpResponse
from django.urls import reverse
from django.utils.html import format_html
from django.utils.safestring import SafeString

from django_retrytasks import display, heads, limits
from django_retrytasks.admin.formatting import EMPTY, first_line
from django_retrytasks.models import Attempt, Job

#: Characters shown of each long value (a traceback: of its end).
SHOWN = {"arguments": 10_000, "result": 10_000, "error": 4_000, "traceback": 20_000}


def job_value_heads(job: Job) -> None:
    """Set ``<what>_head`` and ``<what>_length`` on ``job`` for its arguments and return value."""
    for what, (head, length) in heads.job_value_heads(job.pk, SHOWN["arguments"]).items():
        setattr(job, f"{what}_head", head)
        setattr(job, f"{what}_length", length)


def with_attempt_heads(attempts: QuerySet[Attempt]) -> QuerySet[Attempt]:
    return heads.with_attempt_heads(
        attempts, error_chars=SHOWN["error"], traceback_chars=SHOWN["traceback"]
    )


def download_link(job_id: int, what: str, length: int) -> SafeString:
    url = reverse("admin:django_retrytasks_job_download", args=[job_id, what])
    return format_html(
        '<a href="{}" download>Download the whole ({} characters)</a>', url, f"{length:,}"
    )


def json_value_html(job: Job, what: str) -> SafeString | str:
    """The job's arguments or return value: pretty JSON when whole, else its cut start."""
    head: str | None = getattr(job, f"{what}_head", None)
    length: int = getattr(job, f"{what}_length", None) or 0
    if head is None:
        return EMPTY
    if length <= SHOWN[what]:
        try:
            text = display.json_text(json.loads(head))
        except (RecursionError, ValueError):  # stored nested too deep for Python: as stored
            text = head
        return format_html("<pre>{}</pre>", limits.cut_text(text, 2 * SHOWN[what]))
    return format_html(
        "<pre>{}</pre>{}",
        limits.cut_text(head, SHOWN[what], length=length),
        download_link(job.pk, what, length),
    )


def error_html(attempt: Any) -> SafeString | str:
    """An attempt's error: type and first line, the message (cut) folded under them."""
    head: str = attempt.error_head or ""
    length: int = attempt.error_length or 0
    if not attempt.error_type and not head:
        return EMPTY
    line = first_line(head)
    if head.strip() == line and length <= SHOWN["error"]:
        return format_html("<strong>{}</strong>: {}", attempt.error_type, line)
    return format_html(
        '<details class="rt-collapsible"><summary><strong>{}</strong>: {}</summary>'
        "<pre>{}</pre>{}</details>",
        attempt.error_type,
        line,
        limits.cut_text(head, SHOWN["error"], length=length),
        download_link(attempt.job_id, f"error-{attempt.pk}", length)
        if length > SHOWN["error"]
        else "",
    )


def traceback_html(attempt: Any) -> SafeString | str:
    """An attempt's traceback folded under its last line, cut at its start when long."""
    tail: str = attempt.traceback_tail or ""
    length: int = attempt.traceback_length or 0
    if not tail.strip():
        return EMPTY
    return format_html(
        '<details class="rt-collapsible rt-traceback"><summary>{}</summary><pre>{}</pre>{}'
        "</details>",
        first_line(tail.strip().splitlines()[-1], 80),
        limits.cut_start(tail, SHOWN["traceback"], length=length),
        download_link(attempt.job_id, f"traceback-{attempt.pk}", length)
        if length > SHOWN["traceback"]
        else "",
    )


class Downloads(admin.ModelAdmin):
    """The view answering a long value whole, as an attachment."""

    def download_view(self, request: HttpRequest, object_id: str, what: str) -> HttpResponse:
        job = self.get_object(request, object_id)
        if job is None:
            raise Http404("No such job.")
        if not self.has_view_permission(request, job):
            raise PermissionDenied
        kind, _, attempt_id = what.partition("-")
        if kind not in heads.SOURCES or (kind in ("error", "traceback")) != attempt_id.isdigit():
            raise Http404("Nothing to download by that name.")
        attempt = int(attempt_id) if attempt_id else None
        if attempt is not None and not Attempt.objects.filter(job_id=job.pk, pk=attempt).exists():
            raise Http404("No such attempt of this job.")
        text = heads.whole(kind, job_id=job.pk, attempt_id=attempt)
        is_json = heads.SOURCES[kind][1]
        name = f"job-{job.pk}-{kind}" + (f"-attempt-{attempt}" if attempt else "")
        response = HttpResponse(
            "null" if text is None else text,
            content_type=f"{'application/json' if is_json else 'text/plain'}; charset=utf-8",
        )
        response["Content-Disposition"] = (
            f'attachment; filename="{name}.{"json" if is_json else "txt"}"'
        )
        return response
