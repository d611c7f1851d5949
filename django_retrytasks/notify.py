"""The PostgreSQL side of instant wake-ups: a trigger NOTIFYs when a job becomes due.

The trigger (migration ``0003``) runs in the transaction that stores a waiting job or puts
one back in the queue, so the notification is sent exactly when that transaction commits
and never for one that rolls back. Its payload is the job's queue. Workers listen on
:data:`CHANNEL` (see :mod:`django_retrytasks.worker.listener`).
"""

from __future__ import annotations

from typing import Any

CHANNEL = "django_retrytasks"

TRIGGER_FUNCTION = f"""
CREATE OR REPLACE FUNCTION django_retrytasks_notify() RETURNS trigger AS $$
BEGIN
    PERFORM pg_notify('{CHANNEL}', NEW.queue);
    RETURN NULL;
END;
$$ LANGUAGE plpgsql
"""
#: A job stored waiting, or put back waiting (a retry, an interrupted run, "retry now"),
#: or rescheduled while waiting: workers wake to claim it or to sleep until its time.
TRIGGERS = (
    """
CREATE TRIGGER django_retrytasks_notify_insert
AFTER INSERT ON django_retrytasks_job
FOR EACH ROW WHEN (NEW.status = 'todo')
EXECUTE FUNCTION django_retrytasks_notify()
""",
    """
CREATE TRIGGER django_retrytasks_notify_update
AFTER UPDATE OF status, scheduled_at, queue ON django_retrytasks_job
FOR EACH ROW WHEN (
    NEW.status = 'todo'
    AND (OLD.status <> 'todo' OR NEW.scheduled_at IS DISTINCT FROM OLD.scheduled_at
         OR NEW.queue <> OLD.queue)
)
EXECUTE FUNCTION django_retrytasks_notify()
""",
)
DROP_TRIGGERS = (
    "DROP TRIGGER IF EXISTS django_retrytasks_notify_insert ON django_retrytasks_job",
    "DROP TRIGGER IF EXISTS django_retrytasks_notify_update ON django_retrytasks_job",
    "DROP FUNCTION IF EXISTS django_retrytasks_notify()",
)


def install_triggers(apps: Any, schema_editor: Any) -> None:
    if schema_editor.connection.vendor != "postgresql":
        return
    for statement in (TRIGGER_FUNCTION, *DROP_TRIGGERS[:2], *TRIGGERS):
        schema_editor.execute(statement)


def remove_triggers(apps: Any, schema_editor: Any) -> None:
    if schema_editor.connection.vendor != "postgresql":
        return
    for statement in DROP_TRIGGERS:
        schema_editor.execute(statement)


#: Since migration 0010: one notification per queue per INSERT statement, not one per row
#: (``batch_defer`` of thousands called the function thousands of times).
INSERTED_FUNCTION = f"""
CREATE OR REPLACE FUNCTION django_retrytasks_notify_inserted() RETURNS trigger AS $$
BEGIN
    PERFORM pg_notify('{CHANNEL}', due.queue)
    FROM (SELECT DISTINCT queue FROM inserted WHERE status = 'todo') AS due;
    RETURN NULL;
END;
$$ LANGUAGE plpgsql
"""
INSERT_STATEMENT_TRIGGER = """
CREATE TRIGGER django_retrytasks_notify_insert
AFTER INSERT ON django_retrytasks_job
REFERENCING NEW TABLE AS inserted
FOR EACH STATEMENT EXECUTE FUNCTION django_retrytasks_notify_inserted()
"""


def notify_per_statement(apps: Any, schema_editor: Any) -> None:
    if schema_editor.connection.vendor != "postgresql":
        return
    for statement in (DROP_TRIGGERS[0], INSERTED_FUNCTION, INSERT_STATEMENT_TRIGGER):
        schema_editor.execute(statement)


def notify_per_row(apps: Any, schema_editor: Any) -> None:
    if schema_editor.connection.vendor != "postgresql":
        return
    for statement in (
        DROP_TRIGGERS[0],
        "DROP FUNCTION IF EXISTS django_retrytasks_notify_inserted()",
        TRIGGERS[0],
    ):
        schema_editor.execute(statement)
