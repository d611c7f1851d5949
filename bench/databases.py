"""The databases a bench run creates, migrates and drops: one fresh database per engine."""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit, urlunsplit

ROOT = Path(__file__).resolve().parent.parent
RESULTS_DIR = Path(__file__).resolve().parent / "results"
DEFAULT_PG_URL = "postgres://postgres@127.0.0.1:5432/postgres"
DEFAULT_MYSQL_URL = "mysql://root@127.0.0.1:3306/mysql"
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


class MysqlTarget(Target):
    """A fresh database ``rt_bench_<pid>`` (utf8mb4) on the MariaDB or MySQL server of ``server_url``."""

    def __init__(self, server_url: str) -> None:
        super().__init__(label="MariaDB")
        parts = urlsplit(server_url)
        if parts.scheme not in ("mysql", "mariadb"):
            raise BenchError(f"--mysql-url must start with mysql://, got {server_url!r}")
        self.server = parts
        self.name = f"{NAME_PREFIX}{os.getpid()}"

    def _admin_connection(self) -> Any:
        import MySQLdb

        return MySQLdb.connect(
            host=self.server.hostname or "127.0.0.1",
            port=self.server.port or 3306,
            user=unquote(self.server.username or "root"),
            password=unquote(self.server.password or ""),
            connect_timeout=3,
            autocommit=True,
        )

    def reachable(self) -> bool:
        try:
            connection = self._admin_connection()
        except Exception:
            return False
        if "mariadb" not in connection.get_server_info().lower():
            self.label = "MySQL"
        connection.close()
        return True

    def _execute(self, sql: str) -> None:
        connection = self._admin_connection()
        try:
            connection.cursor().execute(sql)
        finally:
            connection.close()

    def create(self) -> str:
        self.drop()
        self._execute(f"CREATE DATABASE `{self.name}` CHARACTER SET utf8mb4")
        self.url = urlunsplit(self.server._replace(path=f"/{self.name}"))
        return self.url

    def drop(self) -> None:
        self._execute(f"DROP DATABASE IF EXISTS `{self.name}`")


def pick_targets(
    names: list[str],
    pg_url: str,
    *,
    require_postgres: bool = False,
    mysql_url: str = DEFAULT_MYSQL_URL,
    require_mariadb: bool = False,
) -> list[Target]:
    """The targets named (``sqlite``, ``postgres``, ``mariadb``); a server that does not
    answer is skipped with a notice, or ``BenchError`` when it is required."""
    targets: list[Target] = []
    if "sqlite" in names:
        targets.append(SqliteTarget())
    servers: list[tuple[str, PostgresTarget | MysqlTarget, str, bool]] = []
    if "postgres" in names:
        servers.append(("PostgreSQL", PostgresTarget(pg_url), pg_url, require_postgres))
    if "mariadb" in names:
        servers.append(("MariaDB", MysqlTarget(mysql_url), mysql_url, require_mariadb))
    for name, server, url, required in servers:
        if server.reachable():
            targets.append(server)
        elif required:
            raise BenchError(f"{name} at {url} does not answer")
        else:
            print(f"NOTICE: {name} at {url} does not answer: skipped", file=sys.stderr)
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
