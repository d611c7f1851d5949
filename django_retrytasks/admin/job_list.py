"""The job list's rows: the page is read first, then the latest error of its rows only.

As an annotation of the list's query, the latest error was read for every row the database
stepped over too: PostgreSQL computes a row's columns before an OFFSET drops it, so page 200
read 10,000 latest errors to show 50.
"""

from __future__ import annotations

from typing import Any

from django.contrib.admin.views.main import ChangeList
from django.http import HttpRequest

from django_retrytasks import dashboard
from django_retrytasks.models import Job

#: Columns the list never shows, and that may be large: left in the database.
UNLISTED = ("task_kwargs", "return_value")


class JobChangeList(ChangeList):
    def get_results(self, request: HttpRequest) -> None:
        super().get_results(request)
        page: list[Any] = list(self.result_list)
        latest = {
            job_id: (error_type, head)
            for job_id, error_type, head in dashboard.with_latest_error(
                Job.objects.filter(pk__in=[job.pk for job in page])
            ).values_list("pk", dashboard.LATEST_ERROR_TYPE, "latest_error_head")
        }
        for job in page:
            job.latest_error_type, job.latest_error_head = latest.get(job.pk, (None, None))
        self.result_list = page
