"""Exit 0 when the MariaDB or MySQL server of a mysql:// URL answers, 1 otherwise."""

from __future__ import annotations

import sys
from urllib.parse import unquote, urlsplit


def main(url: str) -> int:
    try:
        import MySQLdb
    except ImportError:
        return 1
    parts = urlsplit(url)
    try:
        MySQLdb.connect(
            host=parts.hostname or "127.0.0.1",
            port=parts.port or 3306,
            user=unquote(parts.username or "root"),
            password=unquote(parts.password or ""),
            connect_timeout=3,
        ).close()
    except MySQLdb.Error:
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
