"""The dashboard: queues, pending retries coming due, failure groups, workers."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta
from typing import Any

from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils import timezone

from django_retrytasks import conf, dashboard
from django_retrytasks.admin.actions import JobActions
from django_retrytasks.admin.base import read_page
from django_retrytasks.models import Job, JobStatus
from django_retrytasks.store import operations

#: The window of the dashboard's failure groups.
FAILURE_WINDOW = timedelta(hours=24)


class DashboardViews(JobActions):
    """The dashboard page and its "retry the group" button, served by the job admin."""

    def dashboard_view(self, request: HttpRequest) -> HttpResponse:
        if not self.has_view_permission(request):
            raise PermissionDenied
        return read_page(lambda: self.dashboard_page(request))

    def dashboard_page(self, request: HttpRequest) -> HttpResponse:
        now = timezone.now()
        buckets = dashboard.retries_due(now=now)
        queues = dashboard.counts_by_queue()
        status_counts = dashboard.counts_by_status(queues)  # one read of the jobs for both
        context = {
            **self.admin_site.each_context(request),
            "title": "Retry tasks dashboard",
            "opts": self.opts,
            "app_label": self.opts.app_label,
            "now": now,
            "status_tiles": [
                (status, label, status_counts[status]) for status, label in JobStatus.choices
            ],
            "queues": queues,
            "statuses": Job._meta.get_field("status").choices,
            "chart": due_chart(buckets),
            "due_total": sum(bucket.count for bucket in buckets),
            "failure_groups": dashboard.failure_groups(since=now - FAILURE_WINDOW),
            "failure_window_hours": int(FAILURE_WINDOW.total_seconds() // 3600),
            # Hosts and pids are for those who may see the workers.
            "workers": dashboard.workers(
                now=now, heartbeat_timeout=conf.get_settings().heartbeat_timeout
            )
            if request.user.has_perm("django_retrytasks.view_worker")
            else None,
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
