"""``python -m bench``: measure the queue on SQLite, PostgreSQL and MariaDB; print one table.

For each database: create a fresh one (``rt_bench_<pid>``), migrate it, run the workloads in
a child process (``bench.session``) whose Django points at it, drop it. The table goes to
stdout, the full data (every round, extras, settings) to ``bench/results/*.json``.
"""

from __future__ import annotations

import argparse
import compileall
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench.databases import (
    DEFAULT_MYSQL_URL,
    DEFAULT_PG_URL,
    RESULTS_DIR,
    ROOT,
    BenchError,
    Target,
    migrate,
    pick_targets,
)
from bench.report import render

WORKLOAD_NAMES = [
    "floor",
    "defer",
    "drain",
    "retry",
    "pickup",
    "punctuality",
    "pgbouncer",
    "bigtables",
    "memory",
]
DATABASE_NAMES = ["sqlite", "postgres", "mariadb"]


def name_list(allowed: list[str]) -> Any:
    def parse(value: str) -> list[str]:
        names = [name.strip() for name in value.split(",") if name.strip()]
        unknown = [name for name in names if name not in allowed]
        if unknown or not names:
            raise argparse.ArgumentTypeError(
                f"unknown {', '.join(unknown) or 'empty list'}; choose from {','.join(allowed)}"
            )
        return names

    return parse


def positive_int(value: str) -> int:
    try:
        number = int(value.replace("_", "").replace(",", ""))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r} is not a whole number") from None
    if number < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {number}")
    return number


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m bench",
        description="Measure django-retrytasks as users feel it, beside a driver-level floor.",
    )
    parser.add_argument(
        "--databases",
        type=name_list(DATABASE_NAMES),
        default=DATABASE_NAMES,
        help="which databases, comma-separated (default: sqlite,postgres,mariadb; a server "
        "that does not answer is skipped with a notice; mariadb also measures MySQL)",
    )
    parser.add_argument(
        "--workloads",
        type=name_list(WORKLOAD_NAMES),
        default=WORKLOAD_NAMES,
        help=f"which workloads (default: all of {','.join(WORKLOAD_NAMES)})",
    )
    parser.add_argument(
        "-n", "--jobs", type=positive_int, default=5000, help="jobs per drain (5000)"
    )
    parser.add_argument("--rounds", type=positive_int, default=3, help="rounds per figure (3)")
    parser.add_argument(
        "--memory-jobs", type=positive_int, default=50_000, help="jobs of the memory run (50000)"
    )
    parser.add_argument(
        "--memory-rounds", type=positive_int, default=1, help="rounds of the memory run (1)"
    )
    parser.add_argument(
        "--defer-jobs", type=positive_int, default=2000, help="defer() calls per round (2000)"
    )
    parser.add_argument(
        "--retry-jobs", type=positive_int, default=1000, help="fail-fail-succeed jobs (1000)"
    )
    parser.add_argument(
        "--floor-jobs", type=positive_int, default=2000, help="jobs per floor loop (2000)"
    )
    parser.add_argument(
        "--big-jobs",
        type=positive_int,
        default=1_000_000,
        help="finished jobs of the big-tables run, two attempts each (1000000)",
    )
    parser.add_argument(
        "--time-limit",
        type=float,
        default=570,
        help="seconds for the whole run (default 570; 0: none). Round 1 always runs in full; "
        "later rounds skip steps that no longer fit, and the memory run stops at the limit",
    )
    parser.add_argument(
        "--pg-url",
        default=os.environ.get("BENCH_PG_URL", DEFAULT_PG_URL),
        help="PostgreSQL server to create the bench database on (env BENCH_PG_URL; "
        f"default {DEFAULT_PG_URL}; the database name is replaced by rt_bench_<pid>)",
    )
    parser.add_argument(
        "--require-postgres",
        action="store_true",
        help="fail instead of skipping PostgreSQL when its server does not answer",
    )
    parser.add_argument(
        "--mysql-url",
        default=os.environ.get("BENCH_MYSQL_URL", DEFAULT_MYSQL_URL),
        help="MariaDB or MySQL server to create the bench database on (env BENCH_MYSQL_URL; "
        f"default {DEFAULT_MYSQL_URL}; the database name is replaced by rt_bench_<pid>)",
    )
    parser.add_argument(
        "--require-mariadb",
        action="store_true",
        help="fail instead of skipping MariaDB when its server does not answer",
    )
    parser.add_argument(
        "--output",
        type=Path,
        default=None,
        help="JSON file (default bench/results/bench-<time>.json)",
    )
    return parser


def session_config(args: argparse.Namespace) -> dict[str, Any]:
    return {
        "workloads": args.workloads,
        "rounds": args.rounds,
        "jobs": args.jobs,
        "defer_jobs": args.defer_jobs,
        "batch_size": 1000,
        # Jobs waiting for a later time, deferred before the drain's jobs (drain_backlog).
        "backlog_jobs": 20_000,
        "batch_rounds": 5,
        "retry_jobs": args.retry_jobs,
        "pickup_jobs": 200,
        "pickup_spacing": 0.020,
        "punctuality_jobs": 50,
        # Far enough apart that retries come due one by one and never queue behind each other.
        "punctuality_spacing": 0.040,
        "memory_jobs": args.memory_jobs,
        "memory_rounds": min(args.memory_rounds, args.rounds),
        "memory_sample_interval": 0.25,
        "floor_jobs": args.floor_jobs,
        "big_jobs": args.big_jobs,
        # Retention's batches (of RETRYTASKS_PRUNE_BATCH_SIZE, 500) timed on the big tables.
        "prune_batches": 200,
    }


def machine() -> dict[str, Any]:
    import django

    cpu = platform.processor() or platform.machine()
    memory_gib = 0.0
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                memory_gib = int(line.split()[1]) / 1024**2
    except OSError:
        pass
    git = subprocess.run(
        ["git", "describe", "--always", "--dirty"], cwd=ROOT, capture_output=True, text=True
    ).stdout.strip()
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "memory_gib": memory_gib,
        "os": f"{platform.system()} {platform.release()}",
        "python": platform.python_version(),
        "django": django.get_version(),
        "git": git or "unknown",
        "load_at_start": " ".join(f"{load:.2f}" for load in os.getloadavg()),
    }


def run_target(target: Target, config: dict[str, Any]) -> dict[str, Any]:
    """Create, migrate, measure and drop one database; return its session's results.

    On Ctrl-C the session stops its workers; what it measured until then is returned with
    ``interrupted`` set, and the database is dropped all the same.
    """
    url = target.create()
    try:
        migrate(url)
        with tempfile.TemporaryDirectory(prefix="rt_bench_") as scratch:
            config_path = Path(scratch) / "config.json"
            output_path = Path(scratch) / "result.json"
            config_path.write_text(json.dumps(config))
            command = [sys.executable, "-m", "bench.session", "--config", str(config_path)]
            session = subprocess.Popen(
                [*command, "--output", str(output_path)],
                cwd=ROOT,
                env={**os.environ, "DATABASE_URL": url, "PYTHONUNBUFFERED": "1"},
            )
            interrupted = False
            try:
                code = session.wait()
            except KeyboardInterrupt:
                # The session got the same SIGINT: it stops its workers and exits.
                interrupted = True
                try:
                    code = session.wait(30)
                except subprocess.TimeoutExpired:
                    session.kill()
                    code = session.wait()
            if not output_path.exists():
                if interrupted:
                    raise KeyboardInterrupt
                raise BenchError(f"the {target.label} session exited with {code}")
            result: dict[str, Any] = json.loads(output_path.read_text())
            if interrupted:
                result["interrupted"] = True
            elif code:
                result["errors"]["session"] = f"the session exited with {code}"
            return result
    finally:
        target.drop()


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    started = time.time()
    config = session_config(args)
    try:
        targets = pick_targets(
            args.databases,
            args.pg_url,
            require_postgres=args.require_postgres,
            mysql_url=args.mysql_url,
            require_mariadb=args.require_mariadb,
        )
    except BenchError as error:
        print(error, file=sys.stderr)
        return 1
    # Bytecode as an installed package has it: with PYTHONDONTWRITEBYTECODE set (as on some
    # CI machines) every worker process would compile the app's modules from source at
    # start-up, a tenth of a second of CPU taken from the runs of the drains with several
    # processes.
    for package in ("django_retrytasks", "testproject"):
        compileall.compile_dir(ROOT / package, quiet=1)
    result: dict[str, Any] = {
        "meta": machine(),
        "options": {
            **config,
            "databases": [target.label for target in targets],
            "time_limit_s": args.time_limit,
        },
        "databases": {},
    }
    result["meta"]["started"] = datetime.fromtimestamp(started, UTC).strftime("%Y-%m-%d %H:%M")
    failed = interrupted = False
    for index, target in enumerate(targets):
        print(f"== {target.label} ==", file=sys.stderr, flush=True)
        if args.time_limit:
            # An equal share of what is left, less a margin for migrate and drop.
            left = args.time_limit - (time.time() - started)
            config["budget_s"] = max(left / (len(targets) - index) - 15, 1.0)
        try:
            data = run_target(target, config)
        except BenchError as error:
            failed = True
            print(f"{target.label}: {error}", file=sys.stderr)
            data = {"errors": {"session": str(error)}}
        except KeyboardInterrupt:
            interrupted = True
            break
        result["databases"][target.label] = data
        if data.get("interrupted"):
            interrupted = True
            break
    result["meta"]["duration_s"] = time.time() - started
    output = args.output or RESULTS_DIR / (
        "bench-" + datetime.fromtimestamp(started, UTC).strftime("%Y%m%d-%H%M%S") + ".json"
    )
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(json.dumps(result, indent=2, default=str))
    print(render(result))
    print(f"\nfull results: {output}")
    if interrupted:
        print("interrupted: the table holds what was measured until then", file=sys.stderr)
        return 130
    errors = any(data.get("errors") for data in result["databases"].values())
    return 1 if failed or errors else 0
