"""``defer()`` of one job as a PostgreSQL function; nothing on other databases.

As with the claim (migration 0006): Django turns psycopg's server-side prepared statements off
(for connection poolers), so the INSERT of one job was parsed and planned again at every
``defer()``, about a third of the server's time for it. A PL/pgSQL function keeps its plan for
the session and works through any pooler. The columns a new job does not set are written with
the model's defaults, as the store's other INSERTs write them (``store.rows.default_literals``);
a migration that adds a column to the job table replaces this function.
"""

from __future__ import annotations

from django.db import migrations

from django_retrytasks.migrations._postgres import postgres_only

CREATE = """
CREATE OR REPLACE FUNCTION django_retrytasks_defer(
    new_task_name text,
    new_task_kwargs jsonb,
    new_queue text,
    new_priority integer,
    new_lock text,
    new_queueing_lock text,
    new_scheduled_at timestamptz,
    new_scheduled_later boolean,
    new_created_at timestamptz,
    new_backend text
) RETURNS bigint LANGUAGE plpgsql AS $$
DECLARE
    new_id bigint;
BEGIN
    INSERT INTO django_retrytasks_job (
        task_name, task_kwargs, queue, priority, lock, queueing_lock, scheduled_at,
        scheduled_later, created_at, backend,
        status, attempts, started_at, finished_at, worker_id, abort_requested, snoozes,
        consecutive_losses, held, claimed_ahead, return_value
    ) VALUES (
        new_task_name, new_task_kwargs, new_queue, new_priority, new_lock, new_queueing_lock,
        new_scheduled_at, new_scheduled_later, new_created_at, new_backend,
        'todo', 0, NULL, NULL, NULL, FALSE, 0, 0, FALSE, FALSE, NULL
    ) RETURNING id INTO new_id;
    RETURN new_id;
END;
$$
"""
DROP = """DROP FUNCTION IF EXISTS django_retrytasks_defer(
    text, jsonb, text, integer, text, text, timestamptz, boolean, timestamptz, text
)"""


class Migration(migrations.Migration):
    dependencies = [("django_retrytasks", "0011_job_search_table")]

    operations = [postgres_only(CREATE, DROP)]
