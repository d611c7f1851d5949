"""The operator's console: jobs read-only, every change through :mod:`django_retrytasks.store.operations`.

The job list shows pending retries with their next run and latest error; the job page
shows the arguments, the attempt history with tracebacks and the retries to come; the
dashboard sums up queues, retries coming due and recent failures. Every action needs its
own permission (``retry_job``, ``cancel_job``, ``abort_job``, ``delete_job``); no one adds
or edits a job here. Everything that comes from a job is escaped (``format_html`` and the
template engine's autoescaping).

Django's admin autodiscovery imports this package: importing the modules below registers
:class:`JobAdmin`, :class:`WorkerAdmin` and :class:`ScheduleAdmin`.

=====================  ==========================================================
module                 what it holds
=====================  ==========================================================
``jobs``               the job list and the job page (:class:`JobAdmin`)
``job_list``           the list's rows: the page first, then its latest errors
``search``             the list's search: bounded, through the text index
``attempts``           the job page's attempt history
``long_values``        long values shown cut, and their download view
``filters``            the job list's filters
``actions``            Retry now, Cancel, Abort, Delete, with their permissions
``dashboard_page``     the dashboard and its "retry the group" button
``workers``            the worker list (:class:`WorkerAdmin`)
``schedules``          periodic schedules: Pause, Resume, Run now (:class:`ScheduleAdmin`)
``base``               read-only admins; pages read in one transaction
``formatting``         how times, counts and values are written
=====================  ==========================================================
"""

from __future__ import annotations

from django_retrytasks.admin.formatting import duration_text, relative_text
from django_retrytasks.admin.jobs import JobAdmin
from django_retrytasks.admin.schedules import ScheduleAdmin
from django_retrytasks.admin.workers import WorkerAdmin

__all__ = ["JobAdmin", "ScheduleAdmin", "WorkerAdmin", "duration_text", "relative_text"]
