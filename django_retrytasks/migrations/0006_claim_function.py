"""The claim as a PostgreSQL function; nothing on other databases.

Django turns psycopg's server-side prepared statements off (for connection poolers), so a
claim sent as SQL was parsed and planned again at every call: about 0.5 ms of a 1 ms claim
on an idle worker. A PL/pgSQL function keeps the plans of its queries for the session, and
works through any pooler. One query per case, so that each is planned for what it filters on.
"""

from __future__ import annotations

from django.db import migrations

from django_retrytasks.migrations._postgres import postgres_only

CLAIM_QUERY = """
        UPDATE django_retrytasks_job AS claimed
        SET status = 'doing', started_at = claim_at, worker_id = claimer,
            abort_requested = FALSE,
            -- Beyond the first ``for_runners``, jobs are claimed ahead of a free runner.
            claimed_ahead = picked.rank > for_runners
        FROM (
            SELECT due.id, row_number() OVER (ORDER BY due.priority DESC, due.id) AS rank
            FROM (
                SELECT j.id, j.priority FROM django_retrytasks_job j
                WHERE j.status = 'todo'
                  -- One expression, not "IS NULL OR <=": the OR let the planner sort every
                  -- due job after a bitmap scan of the scheduled_at index instead of walking
                  -- the claiming index in order and stopping at the limit.
                  AND COALESCE(j.scheduled_at, '-infinity'::timestamptz) <= claim_at
                  {queue_filter}
                  AND (j.lock IS NULL OR django_retrytasks_lock_is_free(j.lock, j.id))
                ORDER BY j.priority DESC, j.id
                LIMIT claim_limit
                FOR UPDATE OF j SKIP LOCKED
            ) AS due
        ) AS picked
        WHERE claimed.id = picked.id
        RETURNING claimed.*"""

CREATE = f"""
CREATE OR REPLACE FUNCTION django_retrytasks_claim(
    claim_at timestamptz,
    claimer bigint,
    for_runners integer,
    claim_queues text[],
    claim_limit integer
) RETURNS SETOF django_retrytasks_job LANGUAGE plpgsql AS $$
BEGIN
    -- The claim's commit need not wait for the disk: a claim lost with a crash of the
    -- server only puts its jobs back in the queue (the run's outcome, recorded with a
    -- flushed commit, is then fenced off). For this statement's transaction only.
    PERFORM set_config('synchronous_commit', 'off', true);
    IF claim_queues IS NULL THEN
        RETURN QUERY {CLAIM_QUERY.format(queue_filter="")};
    ELSE
        RETURN QUERY {CLAIM_QUERY.format(queue_filter="AND j.queue = ANY (claim_queues)")};
    END IF;
END;
$$
"""
DROP = (
    "DROP FUNCTION IF EXISTS django_retrytasks_claim(timestamptz, bigint, integer, text[], integer)"
)


class Migration(migrations.Migration):
    dependencies = [("django_retrytasks", "0005_job_claimed_ahead")]

    operations = [postgres_only(CREATE, DROP)]
