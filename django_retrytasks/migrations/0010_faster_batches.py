"""Faster writes of many rows at once, on PostgreSQL: one trigger call per statement.

The NOTIFY of new jobs and the admin search's documents of attempts were kept by a function
call per row; ``batch_defer``, batched outcomes and retention write hundreds of rows a
statement, so each now runs once per statement over the rows it wrote (transition tables).
And the index on attempts' (finished_at, outcome) goes: migration 0008's covering index
starts with the same columns.
"""

from __future__ import annotations

from django.db import migrations

from django_retrytasks import notify, search_index
from django_retrytasks.migrations._postgres import postgres_only


class Migration(migrations.Migration):
    dependencies = [("django_retrytasks", "0009_periodic_schedules")]

    operations = [
        migrations.RunPython(notify.notify_per_statement, notify.notify_per_row, elidable=False),
        postgres_only(search_index.POSTGRES_PER_STATEMENT, search_index.POSTGRES_PER_ROW),
        migrations.RemoveIndex(model_name="attempt", name="retrytasks_attempt_fin_idx"),
    ]
