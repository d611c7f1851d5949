"""The jobs' search documents move to a narrow table of their own, on PostgreSQL.

Migration 0008 put a trigram index over each job's task name and locks on the job table; every
update that moves a job (its claim, its outcome, a retry) entered the job into that index
again, about a fifth of the server's time on a drain. Now the documents live in
``django_retrytasks_job_search``, kept by triggers that fire when a job is stored, when its
task name or a lock changes, and when it is deleted. On a large table this migration copies
every job's document (a few seconds per million jobs).
"""

from __future__ import annotations

from django.db import migrations

from django_retrytasks import search_index
from django_retrytasks.migrations._postgres import postgres_only


class Migration(migrations.Migration):
    dependencies = [("django_retrytasks", "0010_faster_batches")]

    operations = [
        postgres_only(search_index.POSTGRES_JOB_SEARCH, search_index.POSTGRES_JOB_SEARCH_DROP)
    ]
