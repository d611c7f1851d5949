"""PostgreSQL through a real PgBouncer in transaction pooling mode (Debian's ``pgbouncer``).

The same drain and pickup as on a direct connection, with the workers' ``DATABASE_URL``
pointing at the pooler and Django's ``DISABLE_SERVER_SIDE_CURSORS`` on (the one setting a
pooler needs). The workers notice the pooler and pick new jobs up by polling.
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from bench.databases import ROOT, BenchError
from bench.harness import (
    burst_drain,
    connection,
    reset_queue,
    seed,
)
from testproject.demo import bench_tasks

PORT = 6433
DIRECTORY = Path("/tmp/retrytasks-bench-pgbouncer")


def pooled_url() -> str:
    settings = connection.settings_dict
    user = settings.get("USER") or "postgres"
    return urlunsplit(urlsplit(f"postgres://{user}@127.0.0.1:{PORT}/{settings['NAME']}"))


def pgbouncer(action: str) -> None:
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "tests.pgbouncer",
            action,
            "--dir",
            str(DIRECTORY),
            "--port",
            str(PORT),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode:
        raise BenchError(f"pgbouncer {action} failed: {done.stderr.strip()}")


def workload_pgbouncer(config: dict[str, Any]) -> dict[str, float]:
    if connection.vendor != "postgresql":
        return {}
    from bench.session import pickup_latencies  # the same measure as on a direct connection

    env = {"DATABASE_URL": pooled_url(), "DATABASE_POOLED": "1"}
    pgbouncer("start")
    try:
        reset_queue()
        count = config["jobs"]
        seed(bench_tasks.nothing, count)
        drained, _ = burst_drain(bench_tasks.nothing.name, count, "--concurrency", "1", env=env)
        reset_queue()
        started = time.monotonic()
        pickup = pickup_latencies(config, env=env)
        return {
            "pooled_drain_c1": drained,
            "pooled_pickup_p50": pickup["p50"],
            "pooled_pickup_p95": pickup["p95"],
            "extra:pooled_pickup_s": time.monotonic() - started,
        }
    finally:
        pgbouncer("stop")
