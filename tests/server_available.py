"""Exit 0 when the database server of a postgres:// or mysql:// URL answers, 1 otherwise."""

from __future__ import annotations

import sys
from urllib.parse import unquote, urlsplit


def answers(url: str) -> bool:
    parts = urlsplit(url)
    host = parts.hostname or "127.0.0.1"
    password = unquote(parts.password or "")
    try:
        if parts.scheme in ("mysql", "mariadb"):
            import MySQLdb

            user = unquote(parts.username or "root")
            MySQLdb.connect(
                host=host, port=parts.port or 3306, user=user, password=password, connect_timeout=3
            ).close()
        else:
            import psycopg

            user = unquote(parts.username or "postgres")
            psycopg.connect(
                host=host,
                port=parts.port or 5432,
                user=user,
                password=password or None,
                dbname="postgres",
                connect_timeout=3,
            ).close()
    except Exception:  # not installed, refused, unreachable: it does not answer
        return False
    return True


if __name__ == "__main__":
    sys.exit(0 if answers(sys.argv[1]) else 1)
