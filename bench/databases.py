"""The databases a bench run creates, migrates and drops: one fresh database per engine."""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

ROOT = Path(__file__).resolve().parent.parent
RESULTS_DIR = Path(__file__).resolve().parent / "results"
DEFAULT_PG_URL = "postgres://postgres@127.0.0.1:5432/postgres"
#: Every database the bench makes starts with this, so nothing collides with test databases.
NAME_PREFIX = "rt_bench_"


class BenchError(Exception):
    """A workload could not be measured; the message says why."""


@dataclass
class Target:
    """One engine to measure: ``label`` names it in the table, ``url`` is its DATABASE_URL."""

    label: str
    url: str = ""

    def create(self) -> str:
        raise NotImplementedError

    def drop(self) -> None:
        raise NotImplementedError


class SqliteTarget(Target):
    """A fresh SQLite file under ``bench/results/`` (the project's disk, not a RAM-backed /tmp)."""

    def __init__(self) -> None:
        super().__init__(label="SQLite")
        self.path = RESULTS_DIR / f"{NAME_PREFIX}{os.getpid()}.sqlite3"

    def create(self) -> str:
        self.drop()
        RESULTS_DIR.mkdir(parents=True, exist_ok=True)
        self.url = f"sqlite:///{self.path}"
        return self.url

    def drop(self) -> None:
        for suffix in ("", "-journal", "-wal", "-shm"):
            Path(f"{self.path}{suffix}").unlink(missing_ok=True)


class PostgresTarget(Target):
    """A fresh database ``rt_bench_<pid>`` on the server of ``server_url``."""

    def __init__(self, server_url: str) -> None:
        super().__init__(label="PostgreSQL")
        parts = urlsplit(server_url)
        if parts.scheme not in ("postgres", "postgresql"):
            raise BenchError(f"--pg-url must start with postgres://, got {server_url!r}")
        self.server = parts
        self.name = f"{NAME_PREFIX}{os.getpid()}"

    def _admin_connection(self):  # type: ignore[no-untyped-def]
        import psycopg

        return psycopg.connect(
            host=self.server.hostname or "127.0.0.1",
            port=self.server.port or 5432,
            user=self.server.username or "postgres",
            password=self.server.password or None,
            dbname="postgres",
            connect_timeout=3,
            autocommit=True,
        )

    def reachable(self) -> bool:
        try:
            self._admin_connection().close()
        except Exception:
            return False
        return True

    def create(self) -> str:
        self.drop()
        with self._admin_connection() as connection:
            connection.execute(f'CREATE DATABASE "{self.name}"')
        self.url = urlunsplit(self.server._replace(path=f"/{self.name}"))
        return self.url

    def drop(self) -> None:
        with self._admin_connection() as connection:
            # FORCE ends connections a crashed worker may have left behind.
            connection.execute(f'DROP DATABASE IF EXISTS "{self.name}" WITH (FORCE)')


def pick_targets(names: list[str], pg_url: str, *, require_postgres: bool = False) -> list[Target]:
    """The targets named (``sqlite``, ``postgres``); PostgreSQL is skipped with a notice when
    its server does not answer, or ``BenchError`` with ``require_postgres``."""
    targets: list[Target] = []
    if "sqlite" in names:
        targets.append(SqliteTarget())
    if "postgres" in names:
        postgres = PostgresTarget(pg_url)
        if postgres.reachable():
            targets.append(postgres)
        elif require_postgres:
            raise BenchError(f"PostgreSQL at {pg_url} does not answer")
        else:
            print(f"NOTICE: PostgreSQL at {pg_url} does not answer: skipped", file=sys.stderr)
    return targets


def migrate(url: str) -> None:
    """Build the schema of the fresh database with the project's own migrations."""
    result = subprocess.run(
        [sys.executable, str(ROOT / "manage.py"), "migrate", "-v0"],
        cwd=ROOT,
        env={**os.environ, "DATABASE_URL": url},
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode:
        raise BenchError(f"manage.py migrate failed on {url}:\n{result.stdout}{result.stderr}")
