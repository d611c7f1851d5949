"""The floor: the claim-and-complete loop written straight against the driver.

psycopg for PostgreSQL, ``sqlite3`` for SQLite, mysqlclient for MariaDB and MySQL, on a
bare table in the bench database with the same connection settings as Django's. What the queue does on top of this (attempt rows,
retry decisions, locks, heartbeats, the ORM) is what our figures pay for; dividing by the
floor measured in the same round cancels most of the machine's noise.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

TABLE = "rt_bench_floor"


class Floor:
    """Driver-level loops on ``rt_bench_floor``; one instance per round."""

    def __init__(self, settings: dict[str, Any], vendor: str, sqlite_synchronous: str = "") -> None:
        self.vendor = vendor
        if vendor == "postgresql":
            import psycopg

            self.connection: Any = psycopg.connect(
                host=settings.get("HOST") or "127.0.0.1",
                port=settings.get("PORT") or 5432,
                user=settings.get("USER") or None,
                password=settings.get("PASSWORD") or None,
                dbname=settings["NAME"],
                autocommit=True,
            )
            self.param = "%s"
            self.create_sql = (
                f"CREATE TABLE {TABLE} (id bigserial PRIMARY KEY, task_name text NOT NULL, "
                "kwargs jsonb NOT NULL, status text NOT NULL DEFAULT 'todo', "
                "started_at timestamptz, finished_at timestamptz)"
            )
            self.skip_locked = "FOR UPDATE SKIP LOCKED"
            self.begin = "BEGIN"
        elif vendor == "mysql":
            import MySQLdb

            self.connection = MySQLdb.connect(
                host=settings.get("HOST") or "127.0.0.1",
                port=int(settings.get("PORT") or 3306),
                user=settings.get("USER") or "root",
                password=settings.get("PASSWORD") or "",
                database=settings["NAME"],
                charset="utf8mb4",
                autocommit=True,
            )
            # Django's isolation level on MySQL and MariaDB.
            self.execute("SET SESSION TRANSACTION ISOLATION LEVEL READ COMMITTED")
            self.param = "%s"
            self.create_sql = (
                f"CREATE TABLE {TABLE} (id bigint AUTO_INCREMENT PRIMARY KEY, "
                "task_name varchar(255) NOT NULL, kwargs longtext NOT NULL, "
                "status varchar(16) NOT NULL DEFAULT 'todo', "
                "started_at datetime(6), finished_at datetime(6))"
            )
            self.skip_locked = "FOR UPDATE SKIP LOCKED"
            self.begin = "START TRANSACTION"
        else:
            self.connection = sqlite3.connect(str(settings["NAME"]), isolation_level=None)
            if sqlite_synchronous:
                # Same durability as Django's connection (journal_mode lives in the file).
                self.connection.execute(f"PRAGMA synchronous = {int(sqlite_synchronous)}")
            self.param = "?"
            self.create_sql = (
                f"CREATE TABLE {TABLE} (id integer PRIMARY KEY AUTOINCREMENT, "
                "task_name text NOT NULL, kwargs text NOT NULL, status text NOT NULL "
                "DEFAULT 'todo', started_at text, finished_at text)"
            )
            self.skip_locked = ""
            # The write lock up front, as a queue must take it on SQLite to claim safely.
            self.begin = "BEGIN IMMEDIATE"

    def close(self) -> None:
        self.connection.close()

    def execute(self, sql: str, params: tuple[Any, ...] = ()) -> list[Any]:
        if self.vendor == "mysql":
            with self.connection.cursor() as mysql_cursor:
                mysql_cursor.execute(sql, params)
                return list(mysql_cursor.fetchall()) if mysql_cursor.description else []
        cursor = self.connection.execute(sql.replace("%s", self.param), params)
        rows: list[Any] = cursor.fetchall() if cursor.description else []
        return rows

    @contextmanager
    def transaction(self) -> Iterator[None]:
        self.execute(self.begin)
        try:
            yield
        except BaseException:
            self.execute("ROLLBACK")
            raise
        self.execute("COMMIT")

    def reset(self) -> None:
        self.execute(f"DROP TABLE IF EXISTS {TABLE}")
        self.execute(self.create_sql)
        if self.vendor == "mysql":  # no partial indexes: the waiting rows are one range
            self.execute(f"CREATE INDEX {TABLE}_todo ON {TABLE} (status, id)")
        else:
            self.execute(f"CREATE INDEX {TABLE}_todo ON {TABLE} (id) WHERE status = 'todo'")

    def now(self) -> Any:
        moment = datetime.now(UTC)
        if self.vendor == "mysql":
            return moment.replace(tzinfo=None)  # stored in UTC, as Django does
        return moment if self.vendor == "postgresql" else moment.isoformat(" ")

    def insert_one_per_transaction(self, count: int) -> float:
        """Rows per second, each INSERT its own transaction (what one ``defer()`` costs at least)."""
        self.reset()
        sql = f"INSERT INTO {TABLE} (task_name, kwargs) VALUES (%s, %s)"
        started = time.perf_counter()
        for _ in range(count):
            self.execute(sql, ("floor.nothing", "{}"))
        return count / (time.perf_counter() - started)

    def insert_jobs_one_per_transaction(self, insert_sql: str, count: int) -> float:
        """Rows per second, each one job of the queue's own table in its own transaction.

        ``insert_sql``: the INSERT of one new job as the store writes it (``%s`` for the
        columns of ``NewJobRow``). The row ``defer()`` stores, sent through the driver: what
        the jobs table's indexes and triggers cost beside the floor's bare table, with none
        of our Python around it. The caller empties the table afterwards.
        """
        started = time.perf_counter()
        for _ in range(count):
            now = self.now()
            self.execute(
                insert_sql, ("floor.nothing", "{}", "default", 0, None, None, now, False, now, "")
            )
        return count / (time.perf_counter() - started)

    def seed(self, count: int) -> None:
        self.reset()
        with self.transaction():
            for _ in range(count):
                self.execute(
                    f"INSERT INTO {TABLE} (task_name, kwargs) VALUES (%s, %s)",
                    ("floor.nothing", "{}"),
                )
        if self.vendor == "postgresql":
            self.execute(f"ANALYZE {TABLE}")

    def _claim(self, limit: int) -> list[Any]:
        if self.vendor == "mysql":  # no UPDATE ... RETURNING: lock the rows, then mark them
            rows = self.execute(
                f"SELECT id, task_name, kwargs FROM {TABLE} WHERE status = 'todo' "
                f"ORDER BY id LIMIT %s {self.skip_locked}",
                (limit,),
            )
            if rows:
                marks = ", ".join(["%s"] * len(rows))
                self.execute(
                    f"UPDATE {TABLE} SET status = 'doing', started_at = %s WHERE id IN ({marks})",
                    (self.now(), *(row[0] for row in rows)),
                )
            return rows
        return self.execute(
            f"UPDATE {TABLE} SET status = 'doing', started_at = %s WHERE id IN ("
            f"SELECT id FROM {TABLE} WHERE status = 'todo' ORDER BY id LIMIT %s "
            f"{self.skip_locked}) RETURNING id, task_name, kwargs",
            (self.now(), limit),
        )

    def _complete(self, ids: list[int]) -> None:
        marks = ", ".join(["%s"] * len(ids))
        self.execute(
            f"UPDATE {TABLE} SET status = 'done', finished_at = %s WHERE id IN ({marks})",
            (self.now(), *ids),
        )

    def claim_and_complete(self, count: int, per_transaction: int) -> float:
        """Jobs per second through claim + complete.

        ``per_transaction=1``: claim one job in one transaction and complete it in another
        (the shape of a worker that records each outcome on its own). ``per_transaction=10``:
        claim ten and complete them in one transaction.
        """
        self.seed(count)
        done = 0
        started = time.perf_counter()
        while True:
            if per_transaction == 1:
                with self.transaction():
                    rows = self._claim(1)
                if not rows:
                    break
                with self.transaction():
                    self._complete([rows[0][0]])
            else:
                with self.transaction():
                    rows = self._claim(per_transaction)
                    if rows:
                        self._complete([row[0] for row in rows])
                if not rows:
                    break
            done += len(rows)
        elapsed = time.perf_counter() - started
        if done != count:
            raise RuntimeError(f"floor loop completed {done} of {count} rows")
        return count / elapsed
