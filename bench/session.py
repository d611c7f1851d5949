"""One database's bench session: ``python -m bench.session --config C --output O``.

Runs in its own process with ``DATABASE_URL`` pointing at a fresh, migrated bench database
(``bench.run`` creates and drops it). Jobs are deferred here through the public API; they are
run by real ``manage.py runworker`` subprocesses. Every time comes from the database: the
worker's stored ``started_at``/``finished_at`` of each run, the start time a timing task returns
(stored as the job's ``return_value``), the defer time the caller puts in the job's kwargs, and
the ``retry_at`` the worker stored in the first attempt.

Rounds are the outer loop, so the figures of one round (and the floor beside them) are
measured close together in time.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import time
import traceback
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

from bench.big_tables import workload_big_tables
from bench.databases import BenchError
from bench.floor import Floor
from bench.harness import (  # sets Django up
    WorkerProcess,
    burst_drain,
    connection,
    idle_worker,
    log,
    ready_drain,
    require_all_succeeded,
    reset_queue,
    run_span,
    seed,
    status_counts,
    wait_until_succeeded,
)
from bench.pooled import workload_pgbouncer
from bench.stats import percentile
from django_retrytasks.models import Attempt, Job
from django_retrytasks.store.rows import new_job_insert
from testproject.demo import bench_tasks

#: Even past the time limit, the memory run drains this long: enough to tell a peak and a trend.
MIN_MEMORY_DRAIN_S = 20.0


# --- workloads ----------------------------------------------------------------------------
# Each returns {figure id: value} for one round, plus extras under "extra:<name>".


def workload_defer(config: dict[str, Any]) -> dict[str, float]:
    count = config["defer_jobs"]
    reset_queue()
    started = time.perf_counter()
    for _ in range(count):
        bench_tasks.nothing.defer()
    one_per_call = count / (time.perf_counter() - started)
    reset_queue()
    batches, size = config["batch_rounds"], config["batch_size"]
    started = time.perf_counter()
    for _ in range(batches):
        bench_tasks.nothing.batch_defer(*[{}] * size)
    batched = batches * size / (time.perf_counter() - started)
    return {"defer_one": one_per_call, "defer_batch": batched}


def workload_drain(config: dict[str, Any], *, concurrency: int, processes: int) -> dict[str, float]:
    """Jobs/s over the runs' span (first start to last finish, as the worker stored them),
    plus, for one burst worker, jobs/s over its wall time (Django start-up included)."""
    count = config["jobs"]
    reset_queue()
    if processes > 1:  # long-running workers, all waiting when the jobs come (see ready_drain)
        rate = ready_drain(
            bench_tasks.nothing, count, "--concurrency", str(concurrency), processes=processes
        )
        return {f"drain_{processes}p": rate}
    figure = f"drain_c{concurrency}"
    seed(bench_tasks.nothing, count)
    rate, whole = burst_drain(bench_tasks.nothing.name, count, "--concurrency", str(concurrency))
    return {figure: rate, f"extra:{figure}_whole_process": whole}


def workload_drain_backlog(config: dict[str, Any]) -> dict[str, float]:
    """Like ``drain_c1``, with ``backlog_jobs`` jobs due an hour later deferred first: they
    sit ahead of the due jobs in claiming order (as old jobs waiting for a retry do)."""
    count = config["jobs"]
    reset_queue()
    seed(bench_tasks.nothing.configure(schedule_in={"hours": 1}), config["backlog_jobs"])
    seed(bench_tasks.nothing, count)
    rate, _ = burst_drain(bench_tasks.nothing.name, count, "--concurrency", "1")
    return {"drain_backlog": rate}


def workload_retry(config: dict[str, Any]) -> dict[str, float]:
    count = config["retry_jobs"]
    task = bench_tasks.fail_twice
    reset_queue()
    seed(task, count)
    runs_per_s, _ = burst_drain(task.name, count, runs_per_job=3)
    return {"retry_runs": runs_per_s, "extra:retry_jobs_per_s": runs_per_s / 3}


def run_on_idle_worker(
    task: Any, count: int, spacing: float, env: dict[str, str] | None = None
) -> None:
    """Defer ``count`` jobs ``spacing`` seconds apart to an idle worker; wait until all succeed.

    Each job carries the caller's clock read just before its ``defer()`` call.
    """
    reset_queue()
    worker = idle_worker(env)
    try:
        next_at = time.time()
        for _ in range(count):
            pause = next_at - time.time()
            if pause > 0:
                time.sleep(pause)
            task.defer(deferred_at=time.time())
            next_at += spacing
        wait_until_succeeded(task.name, count, timeout=30, worker=worker)
    finally:
        worker.stop()


def pickup_latencies(config: dict[str, Any], env: dict[str, str] | None = None) -> dict[str, float]:
    """Pickup latency percentiles (ms) of an idle worker (started with ``env``)."""
    count, spacing = config["pickup_jobs"], config["pickup_spacing"]
    task = bench_tasks.report_start
    run_on_idle_worker(task, count, spacing, env)
    latencies = [
        (started - kwargs["deferred_at"]) * 1000
        for kwargs, started in Job.objects.filter(task_name=task.name).values_list(
            "task_kwargs", "return_value"
        )
    ]
    return {
        "p50": percentile(latencies, 0.50),
        "p95": percentile(latencies, 0.95),
        "p99": percentile(latencies, 0.99),
        "max": max(latencies),
    }


def workload_pickup(config: dict[str, Any]) -> dict[str, float]:
    pickup = pickup_latencies(config)
    return {
        "pickup_p50": pickup["p50"],
        "pickup_p95": pickup["p95"],
        "pickup_p99": pickup["p99"],
        "extra:pickup_max": pickup["max"],
    }


def workload_punctuality(config: dict[str, Any]) -> dict[str, float]:
    count, spacing = config["punctuality_jobs"], config["punctuality_spacing"]
    task = bench_tasks.fail_once_wait_two
    run_on_idle_worker(task, count, spacing)
    due = dict(
        Attempt.objects.filter(job__task_name=task.name, number=1).values_list("job_id", "retry_at")
    )
    second_starts = dict(Job.objects.filter(task_name=task.name).values_list("id", "return_value"))
    lateness = []
    for job_id, retry_at in due.items():
        second_start = second_starts.get(job_id)
        if retry_at is None or second_start is None:
            raise BenchError(f"job {job_id}: no retry_at on its first attempt or no second start")
        lateness.append((second_start - retry_at.timestamp()) * 1000)
    if len(lateness) != count:
        raise BenchError(f"expected {count} first attempts, found {len(lateness)}")
    return {
        "retry_late_p50": percentile(lateness, 0.50),
        "retry_late_p95": percentile(lateness, 0.95),
        "extra:retry_late_min": min(lateness),
        "extra:retry_late_max": max(lateness),
    }


def workload_memory(config: dict[str, Any], *, deadline: float | None = None) -> dict[str, float]:
    """Peak RSS of one burst worker draining ``memory_jobs`` jobs, and its growth.

    ``deadline`` (``time.monotonic()``, from ``--time-limit``) stops the worker gracefully
    when the drain would overrun it, though never before it drained for
    ``MIN_MEMORY_DRAIN_S``; the figures then cover the jobs it did drain, and
    ``extra:memory_jobs_done`` says how many.
    """
    count = config["memory_jobs"]
    reset_queue()
    seed(bench_tasks.nothing, count)
    worker = WorkerProcess("--burst")
    stop_at = None if deadline is None else max(deadline, time.monotonic() + MIN_MEMORY_DRAIN_S)
    samples: list[int] = []
    high_water = 0
    hard_deadline = time.monotonic() + 120 + count / 10
    stopped_early = False
    try:
        while worker.process.poll() is None:
            reading = worker.memory_kib()
            if reading is not None:
                samples.append(reading[0])
                high_water = max(high_water, reading[1])
            if time.monotonic() > hard_deadline:
                raise worker._failure("did not finish in time")
            if stop_at is not None and time.monotonic() > stop_at:
                stopped_early = True
                worker.stop()
                break
            time.sleep(config["memory_sample_interval"])
        if not stopped_early:
            worker.wait(timeout=10)
    finally:
        worker.kill()
    done = status_counts(bench_tasks.nothing.name).get("succeeded", 0)
    if not stopped_early:
        require_all_succeeded(bench_tasks.nothing.name, count, [worker])
    seconds, _ = run_span(bench_tasks.nothing.name)
    if len(samples) < 10:
        raise BenchError(f"only {len(samples)} RSS samples; the drain was too short to judge")
    # Growth: the RSS at the end against the RSS once the first tenth of the run is over
    # (start-up and the first claims have allocated what they need by then).
    tenth = len(samples) // 10
    after_warm_up = sorted(samples[tenth : 2 * tenth])
    at_end = sorted(samples[-tenth:])
    return {
        "memory_peak": max(high_water, *samples) / 1024,
        "memory_growth": (at_end[len(at_end) // 2] - after_warm_up[len(after_warm_up) // 2]) / 1024,
        "extra:memory_jobs_done": done,
        "extra:memory_drain_jobs_per_s": done / seconds,
        "extra:memory_samples": len(samples),
    }


def workload_floor(config: dict[str, Any], settings: dict[str, Any]) -> dict[str, float]:
    floor = Floor(connection.settings_dict, connection.vendor, settings.get("synchronous", ""))
    try:
        count = config["floor_jobs"]
        columns, values = new_job_insert(Job, quote=connection.ops.quote_name)
        returning = "" if connection.vendor == "mysql" else " RETURNING id"  # defer() needs the id
        insert_sql = f"INSERT INTO {Job._meta.db_table} ({columns}) VALUES {values}{returning}"
        reset_queue()
        jobs_insert = floor.insert_jobs_one_per_transaction(insert_sql, count)
        reset_queue()
        return {
            "floor_insert": floor.insert_one_per_transaction(count),
            "floor_insert_jobs": jobs_insert,
            "floor_1tx": floor.claim_and_complete(count, per_transaction=1),
            "floor_10tx": floor.claim_and_complete(count, per_transaction=10),
        }
    finally:
        floor.close()


# --- what was measured on -----------------------------------------------------------------


def database_settings() -> dict[str, Any]:
    """Server version and the settings that decide write speed, as the database reports them."""
    settings_dict = connection.settings_dict
    info: dict[str, Any] = {
        "vendor": connection.vendor,
        "CONN_MAX_AGE": settings_dict.get("CONN_MAX_AGE"),
        "OPTIONS": {key: str(value) for key, value in settings_dict.get("OPTIONS", {}).items()},
    }
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute("SHOW server_version")
            info["version"] = cursor.fetchone()[0]
            for name in (
                "shared_buffers",
                "synchronous_commit",
                "fsync",
                "wal_level",
                "max_connections",
            ):
                cursor.execute(f"SHOW {name}")
                info[name] = cursor.fetchone()[0]
            import psycopg

            info["driver"] = f"psycopg {psycopg.__version__}"
        elif connection.vendor == "mysql":
            cursor.execute("SELECT VERSION()")
            info["version"] = cursor.fetchone()[0]
            names = (
                "innodb_flush_log_at_trx_commit",
                "sync_binlog",
                "log_bin",
                "innodb_buffer_pool_size",
                "max_connections",
            )
            cursor.execute(
                f"SHOW VARIABLES WHERE Variable_name IN ({', '.join(['%s'] * len(names))})", names
            )
            info.update(dict(cursor.fetchall()))
            import MySQLdb

            info["driver"] = "mysqlclient " + ".".join(map(str, MySQLdb.version_info[:3]))
        else:
            import sqlite3

            info["version"] = sqlite3.sqlite_version
            for name in ("journal_mode", "synchronous", "busy_timeout"):
                cursor.execute(f"PRAGMA {name}")
                info[name] = str(cursor.fetchone()[0])
            info["driver"] = f"sqlite3 (Python {platform.python_version()})"
    return info


#: The steps of each workload; a step's figures start with its name.
WORKLOADS: dict[str, dict[str, Callable[..., dict[str, float]]]] = {
    "floor": {"floor": workload_floor},
    "defer": {"defer": workload_defer},
    "drain": {
        "drain_c1": partial(workload_drain, concurrency=1, processes=1),
        "drain_c4": partial(workload_drain, concurrency=4, processes=1),
        "drain_2p": partial(workload_drain, concurrency=1, processes=2),
        "drain_4p": partial(workload_drain, concurrency=1, processes=4),
        "drain_backlog": workload_drain_backlog,
    },
    "retry": {"retry": workload_retry},
    "pickup": {"pickup": workload_pickup},
    "punctuality": {"punctuality": workload_punctuality},
    "pgbouncer": {"pgbouncer": workload_pgbouncer},
    "bigtables": {"big_tables": workload_big_tables},
}
#: Steps measured in the first round only (filling a year of history takes minutes).
FIRST_ROUND_ONLY = {"big_tables"}


class Session:
    """Runs the steps round by round within the time budget, saving results after each step.

    Round 1 always runs in full, so every figure has a value. Later rounds run a step only if
    its round-1 duration still fits before the deadline, keeping back the time the memory run
    is expected to need; the memory run comes last and is stopped at the deadline.
    """

    def __init__(self, config: dict[str, Any], output: Path) -> None:
        self.config = config
        self.output = output
        budget = config.get("budget_s")
        self.deadline = time.monotonic() + budget if budget else None
        self.durations: dict[str, float] = {}
        self.result: dict[str, Any] = {
            "settings": database_settings(),
            "rounds": {},
            "errors": {},
            "skipped_for_time": {},
            "notes": [],
        }

    def save(self) -> None:
        self.output.write_text(json.dumps(self.result, indent=2, default=str))

    def memory_reserve(self) -> float:
        """Seconds kept back for the memory run: its expected time from the drain rate
        measured so far, but at most a quarter of the budget (three rounds of every other
        figure matter more than draining all 50,000 jobs; a cut run is reported as such)."""
        if "memory" not in self.config["workloads"]:
            return 0.0
        rates = self.result["rounds"].get("drain_c1")
        expected = self.config["memory_jobs"] / statistics.median(rates) + 15 if rates else 30.0
        budget = self.config.get("budget_s")
        return min(expected, budget / 4) if budget else expected

    def fits(self, step: str, reserve: float) -> bool:
        if self.deadline is None:
            return True
        needed = self.durations.get(step, 0.0) + reserve
        return time.monotonic() + needed <= self.deadline

    def run_step(
        self, step: str, function: Callable[..., dict[str, float]], round_number: int
    ) -> None:
        started = time.perf_counter()
        try:
            figures = function()
        except Exception as error:
            self.result["errors"][step] = f"{type(error).__name__}: {error}"
            log(f"{step} round {round_number} FAILED: {self.result['errors'][step]}")
            if not isinstance(error, BenchError):
                traceback.print_exc()
            return
        finally:
            self.durations.setdefault(step, time.perf_counter() - started)
        for figure, value in figures.items():
            self.result["rounds"].setdefault(figure, []).append(value)
        shown = ", ".join(
            f"{figure} {value:.1f}" for figure, value in figures.items() if ":" not in figure
        )
        log(f"{step} round {round_number} ({time.perf_counter() - started:.0f} s): {shown}")
        self.save()

    def skip(self, step: str) -> None:
        skipped = self.result["skipped_for_time"]
        skipped[step] = skipped.get(step, 0) + 1
        self.save()

    def run(self) -> None:
        config, settings = self.config, self.result["settings"]
        for round_number in range(1, config["rounds"] + 1):
            for workload in config["workloads"]:
                if workload == "memory":
                    continue
                for step, function in WORKLOADS[workload].items():
                    if step in self.result["errors"]:
                        continue  # a step that failed once is not tried again
                    if round_number > 1 and step in FIRST_ROUND_ONLY:
                        continue
                    if round_number > 1 and not self.fits(step, self.memory_reserve()):
                        self.skip(step)
                        continue
                    arguments = (config, settings) if step == "floor" else (config,)
                    self.run_step(step, partial(function, *arguments), round_number)
        if "memory" in config["workloads"]:
            for round_number in range(1, config["memory_rounds"] + 1):
                if "memory" in self.result["errors"]:
                    break
                if round_number > 1 and not self.fits("memory", 0.0):
                    self.skip("memory")
                    continue
                self.run_step(
                    "memory", partial(workload_memory, config, deadline=self.deadline), round_number
                )
            done = self.result["rounds"].get("extra:memory_jobs_done", [])
            if any(jobs < config["memory_jobs"] for jobs in done):
                self.result["notes"].append(
                    f"the time limit stopped the memory run after {min(done):,.0f} of "
                    f"{config['memory_jobs']:,} jobs"
                )
        reset_queue()
        self.save()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--config", required=True, help="JSON file of the run's options")
    parser.add_argument("--output", required=True, help="where to write this session's JSON")
    args = parser.parse_args(argv)
    config = json.loads(Path(args.config).read_text())
    try:
        Session(config, Path(args.output)).run()
    except KeyboardInterrupt:
        return 130  # workers were stopped by the finally blocks; results so far are saved
    return 0


if __name__ == "__main__":
    sys.exit(main())
