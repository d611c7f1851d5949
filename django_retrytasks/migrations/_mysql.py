"""For migrations that give MySQL and MariaDB what the model's indexes cannot; nothing elsewhere.

Neither database has partial indexes, and MariaDB has no indexes on expressions, so Django
leaves out the model's conditional unique constraints on both, and every index of ``Job``
written with expressions on MariaDB (``models.W037``, ``W043``, ``W044`` when migrating).
These steps build their MySQL forms instead:

- each unique rule on a rows' subset becomes a unique index on a virtual column that is
  NULL except in the state that matters (``status = 'todo'`` for queueing locks, ``'doing'``
  for locks): a unique index ignores NULLs;
- each partial index becomes a composite index led by the columns of its condition, so
  that the rows it covered are one range of it;
- lock, queueing lock and queue names compare byte for byte, as on PostgreSQL and SQLite,
  not by the server's default collation (which folds case and accents);
- the JSON columns are plain ``utf8mb4`` text without MariaDB's ``json_valid`` check, whose
  parser refuses JSON nested 32 deep: what the other databases store, these store too.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.db import migrations

JOB = "django_retrytasks_job"
ATTEMPT = "django_retrytasks_attempt"

Statements = Callable[[Any], list[str]]


def is_mysql(connection: Any) -> bool:
    return bool(connection.vendor == "mysql")


def exact_collation(connection: Any) -> str:
    """A binary collation without trailing-space padding: ``'a'`` and ``'a '`` differ."""
    if connection.mysql_is_mariadb:
        return "utf8mb4_nopad_bin"
    with connection.cursor() as cursor:
        cursor.execute("SHOW COLLATION LIKE 'utf8mb4_0900_bin'")
        return "utf8mb4_0900_bin" if cursor.fetchall() else "utf8mb4_bin"


def mysql_only(forwards: Statements, backwards: Statements) -> migrations.RunPython:
    """Run the statements ``forwards(connection)`` on MySQL and MariaDB; ``backwards`` to undo."""

    def run(statements: Statements) -> Callable[[Any, Any], None]:
        def apply(apps: Any, schema_editor: Any) -> None:
            if is_mysql(schema_editor.connection):
                for statement in statements(schema_editor.connection):
                    schema_editor.execute(statement)

        return apply

    # DDL commits at once on MySQL: no transaction around it.
    return migrations.RunPython(run(forwards), run(backwards), atomic=False, elidable=False)


def index_skipped_by_django(connection: Any) -> bool:
    """Whether Django left out the model's plain indexes written as expressions (MariaDB)."""
    return not connection.features.supports_expression_indexes


# --- migration 0001 ---------------------------------------------------------------------------


def initial_forwards(connection: Any) -> list[str]:
    exact = exact_collation(connection)
    statements = [
        f"""ALTER TABLE {JOB}
            MODIFY `queue` varchar(128) CHARACTER SET utf8mb4 COLLATE {exact} NOT NULL,
            MODIFY `lock` varchar(255) CHARACTER SET utf8mb4 COLLATE {exact} NULL,
            MODIFY `queueing_lock` varchar(255) CHARACTER SET utf8mb4 COLLATE {exact} NULL,
            MODIFY `task_kwargs` longtext CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL,
            MODIFY `return_value` longtext CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NULL""",
        # retrytasks_one_waiting_per_qlock and retrytasks_one_running_per_lock.
        f"""ALTER TABLE {JOB}
            ADD COLUMN `waiting_queueing_lock` varchar(255) CHARACTER SET utf8mb4 COLLATE {exact}
                AS (CASE WHEN `status` = 'todo' THEN `queueing_lock` END) VIRTUAL,
            ADD COLUMN `running_lock` varchar(255) CHARACTER SET utf8mb4 COLLATE {exact}
                AS (CASE WHEN `status` = 'doing' THEN `lock` END) VIRTUAL,
            ADD UNIQUE INDEX retrytasks_one_waiting_per_qlock (`waiting_queueing_lock`),
            ADD UNIQUE INDEX retrytasks_one_running_per_lock (`running_lock`)""",
        # retrytasks_lock_idx, retrytasks_todo_sched_idx and the claiming indexes.
        f"""ALTER TABLE {JOB}
            ADD INDEX retrytasks_my_lock_idx (`lock`, `status`, `id`),
            ADD INDEX retrytasks_my_todo_sched_idx (`status`, `scheduled_at`),
            ADD INDEX retrytasks_my_todo_idx (`status`, `priority` DESC, `id`),
            ADD INDEX retrytasks_my_todo_queue_idx (`status`, `queue`, `priority` DESC, `id`)""",
    ]
    if index_skipped_by_django(connection):
        statements += [
            f"CREATE INDEX retrytasks_status_idx ON {JOB} (`status`, `finished_at`)",
            f"CREATE INDEX retrytasks_attempt_fin_idx ON {ATTEMPT} (`finished_at`, `outcome`)",
        ]
    return statements


def initial_backwards(connection: Any) -> list[str]:
    statements = [
        f"""ALTER TABLE {JOB}
            DROP INDEX retrytasks_my_lock_idx,
            DROP INDEX retrytasks_my_todo_sched_idx,
            DROP INDEX retrytasks_my_todo_idx,
            DROP INDEX retrytasks_my_todo_queue_idx,
            DROP INDEX retrytasks_one_waiting_per_qlock,
            DROP INDEX retrytasks_one_running_per_lock,
            DROP COLUMN `waiting_queueing_lock`,
            DROP COLUMN `running_lock`""",
    ]
    if index_skipped_by_django(connection):
        statements += [
            f"DROP INDEX retrytasks_status_idx ON {JOB}",
            f"DROP INDEX retrytasks_attempt_fin_idx ON {ATTEMPT}",
        ]
    return statements


# --- migration 0007 ---------------------------------------------------------------------------


def scheduled_later_forwards(connection: Any) -> list[str]:
    """Jobs scheduled for later leave the claiming indexes' range, and get one by time."""
    return [
        f"""ALTER TABLE {JOB}
            DROP INDEX retrytasks_my_todo_idx,
            DROP INDEX retrytasks_my_todo_queue_idx,
            ADD INDEX retrytasks_my_todo_idx
                (`status`, `scheduled_later`, `priority` DESC, `id`),
            ADD INDEX retrytasks_my_todo_queue_idx
                (`status`, `scheduled_later`, `queue`, `priority` DESC, `id`),
            ADD INDEX retrytasks_my_later_idx (`status`, `scheduled_later`, `scheduled_at`)""",
    ]


def scheduled_later_backwards(connection: Any) -> list[str]:
    return [
        f"""ALTER TABLE {JOB}
            DROP INDEX retrytasks_my_later_idx,
            DROP INDEX retrytasks_my_todo_idx,
            DROP INDEX retrytasks_my_todo_queue_idx,
            ADD INDEX retrytasks_my_todo_idx (`status`, `priority` DESC, `id`),
            ADD INDEX retrytasks_my_todo_queue_idx (`status`, `queue`, `priority` DESC, `id`)""",
    ]


# --- migration 0009 ---------------------------------------------------------------------------

SCHEDULE = "django_retrytasks_schedule"


def schedule_names_forwards(connection: Any) -> list[str]:
    """A schedule is its task and ``periodic_id`` byte for byte: with the default collation
    "Morning" and "morning" would be one row of the unique constraint."""
    exact = exact_collation(connection)
    return [
        f"""ALTER TABLE {SCHEDULE}
            MODIFY `task_name` varchar(255) CHARACTER SET utf8mb4 COLLATE {exact} NOT NULL,
            MODIFY `periodic_id` varchar(128) CHARACTER SET utf8mb4 COLLATE {exact} NOT NULL"""
    ]


def schedule_names_backwards(connection: Any) -> list[str]:
    return []  # the table goes with the migration's other steps
