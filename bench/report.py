"""The table: one row per figure, one column pair per database, floor and ratios included."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from bench.stats import summary


@dataclass(frozen=True)
class Figure:
    key: str
    label: str
    unit: str


def figures(options: dict[str, Any]) -> list[Figure]:
    """The rows of the table, in the order users read them."""
    jobs, memory_jobs = options["jobs"], options["memory_jobs"]
    return [
        Figure(
            "defer_one", f"defer(), one job per call ({options['defer_jobs']:,} calls)", "jobs/s"
        ),
        Figure("defer_batch", f"batch_defer() of {options['batch_size']:,}", "jobs/s"),
        Figure("drain_c1", f"drain {jobs:,} no-op jobs: 1 worker, --concurrency 1", "jobs/s"),
        Figure("drain_c4", f"drain {jobs:,} no-op jobs: 1 worker, --concurrency 4", "jobs/s"),
        Figure("drain_2p", f"drain {jobs:,} no-op jobs: 2 workers, --concurrency 1", "jobs/s"),
        Figure("drain_4p", f"drain {jobs:,} no-op jobs: 4 workers, --concurrency 1", "jobs/s"),
        Figure(
            "drain_backlog",
            f"drain {jobs:,} behind {options['backlog_jobs']:,} jobs due in an hour, "
            "--concurrency 1",
            "jobs/s",
        ),
        Figure(
            "retry_runs",
            f"retry path: {options['retry_jobs']:,} jobs fail, fail, succeed (immediate retry)",
            "runs/s",
        ),
        Figure("pickup_p50", "pickup latency, idle worker, defer → start: p50", "ms"),
        Figure("pickup_p95", "pickup latency: p95", "ms"),
        Figure("pickup_p99", "pickup latency: p99", "ms"),
        Figure("retry_late_p50", "retry lateness (wait=2), start - due: p50", "ms"),
        Figure("retry_late_p95", "retry lateness: p95", "ms"),
        Figure("memory_peak", f"worker peak RSS draining {memory_jobs:,} jobs", "MiB"),
        Figure("memory_growth", "worker RSS growth, 10 % → end of that drain", "MiB"),
        Figure("pooled_drain_c1", f"through PgBouncer: drain {jobs:,}, --concurrency 1", "jobs/s"),
        Figure("pooled_pickup_p50", "through PgBouncer: pickup latency p50 (polling)", "ms"),
        Figure("pooled_pickup_p95", "through PgBouncer: pickup latency p95", "ms"),
        Figure(
            "drain_big",
            f"drain {jobs:,} beside {options['big_jobs']:,} finished jobs and "
            f"{2 * options['big_jobs']:,} attempts",
            "jobs/s",
        ),
        Figure("big_admin_list", "admin job list beside them", "ms"),
        Figure("big_dashboard", "admin dashboard beside them", "ms"),
        Figure("prune_rate", "retention: finished jobs deleted with their attempts", "jobs/s"),
        Figure("floor_insert", "floor: INSERT, one row per transaction", "rows/s"),
        Figure(
            "floor_insert_jobs",
            "a job's row INSERTed into the jobs table, one per transaction, by the driver",
            "rows/s",
        ),
        Figure("floor_1tx", "floor: claim 1 + complete 1, each its own transaction", "jobs/s"),
        Figure("floor_10tx", "floor: claim 10 + complete 10 in one transaction", "jobs/s"),
    ]


#: Ratios computed round by round (both figures measured minutes apart at most).
RATIOS = [
    ("defer_one", "floor_insert", "defer() ÷ floor INSERT"),
    ("floor_insert_jobs", "floor_insert", "the jobs table's INSERT by the driver ÷ floor INSERT"),
    ("defer_one", "floor_insert_jobs", "defer() ÷ the jobs table's INSERT by the driver"),
    ("drain_c1", "floor_1tx", "drain --concurrency 1 ÷ floor 1 per transaction"),
    ("drain_c4", "floor_1tx", "drain --concurrency 4 ÷ floor 1 per transaction"),
    ("drain_4p", "drain_c1", "drain, 4 workers ÷ 1 worker"),
    ("drain_big", "drain_c1", "drain beside a year of history ÷ drain on empty tables"),
    ("drain_backlog", "drain_c1", "drain behind a backlog ÷ drain --concurrency 1"),
    ("retry_runs", "floor_1tx", "retry path ÷ floor 1 per transaction"),
]


def format_value(value: float, unit: str) -> str:
    if unit == "ratio":
        return f"{value:.2f}"
    if unit in ("ms", "MiB"):
        return f"{value:.1f}" if abs(value) < 100 else f"{value:.0f}"
    return f"{value:,.0f}"


def short_error(error: str) -> str:
    """The first line of an error, and its last line when that differs (the worker's exception)."""
    lines = [line.strip() for line in error.splitlines() if line.strip()]
    if len(lines) > 1:
        return f"{lines[0]} ... {lines[-1]}"
    return lines[0] if lines else "failed"


def cell(values: list[float] | None, unit: str, error: str | None, planned: int) -> tuple[str, str]:
    """(median, "min - max"), the spread marked with the number of runs when fewer than planned."""
    if error:
        return "failed", "see below"
    if not values:
        return "-", ""
    stats = summary(values)
    median = format_value(stats["median"], unit)
    if stats["rounds"] == 1:
        return median, "(1 run)"
    spread = f"{format_value(stats['min'], unit)} - {format_value(stats['max'], unit)}"
    if stats["rounds"] < planned:
        spread += f" ({stats['rounds']} runs)"
    return median, spread


#: Figures of a step that failed; a step's figures start with its name (see bench.session).
STEP_OF_FIGURE = {
    "retry_runs": "retry",
    "retry_late_p50": "punctuality",
    "retry_late_p95": "punctuality",
}


def error_for(key: str, errors: dict[str, str]) -> str | None:
    if "session" in errors:
        return errors["session"]
    step = STEP_OF_FIGURE.get(key) or next((name for name in errors if key.startswith(name)), None)
    return errors.get(step) if step else None


def ratio_rounds(rounds: dict[str, list[float]], top: str, bottom: str) -> list[float]:
    tops, bottoms = rounds.get(top, []), rounds.get(bottom, [])
    return [a / b for a, b in zip(tops, bottoms, strict=False) if b]


def render(result: dict[str, Any]) -> str:
    """The whole report as Markdown: header lines, then the table."""
    meta, options, databases = result["meta"], result["options"], result["databases"]
    labels = list(databases)
    lines = [
        f"django-retrytasks bench, {meta['started']} UTC, {meta['duration_s']:.0f} s "
        f"(git {meta['git']})",
        "",
        f"- machine: {meta['cpu']}, {meta['cores']} cores, {meta['memory_gib']:.0f} GiB RAM, "
        f"{meta['os']}; load average at start {meta['load_at_start']}",
        f"- versions: Python {meta['python']}, Django {meta['django']}",
    ]
    for label in labels:
        settings = databases[label].get("settings", {})
        shown = ", ".join(
            f"{key} {value}"
            for key, value in settings.items()
            if key not in ("vendor", "version", "OPTIONS") and value not in ("", None, {})
        )
        options_text = settings.get("OPTIONS") or "none"
        lines.append(
            f"- {label} {settings.get('version', '?')}: {shown}; Django OPTIONS {options_text}"
        )
    lines.append(
        f"- each figure: median of {options['rounds']} rounds (min - max); "
        f"memory: {options['memory_rounds']} round(s)"
    )
    lines.append("")
    rounds = options["rounds"]
    header = ["figure", "unit"]
    for label in labels:
        header += [f"{label} median", "min - max"]
    lines.append("| " + " | ".join(header) + " |")
    lines.append("|" + "---|" * len(header))
    for figure in figures(options):
        row = [figure.label, figure.unit]
        present = False
        for label in labels:
            data = databases[label]
            values = data.get("rounds", {}).get(figure.key)
            error = error_for(figure.key, data.get("errors", {}))
            present = present or bool(values) or bool(error)
            planned = options["memory_rounds"] if figure.key.startswith("memory") else rounds
            row += list(cell(values, figure.unit, error, planned))
        if present:
            lines.append("| " + " | ".join(row) + " |")
    for top, bottom, text in RATIOS:
        row = [text, "ratio"]
        present = False
        for label in labels:
            values = ratio_rounds(databases[label].get("rounds", {}), top, bottom)
            present = present or bool(values)
            row += list(cell(values, "ratio", None, rounds))
        if present:
            lines.append("| " + " | ".join(row) + " |")
    for label in labels:
        data = databases[label]
        for step, error in data.get("errors", {}).items():
            lines.append(f"\n{label} {step} failed: {short_error(error)}")
        skipped = data.get("skipped_for_time", {})
        if skipped:
            shown = ", ".join(f"{step} {count}" for step, count in skipped.items())
            lines.append(f"\n{label}: rounds skipped to keep within --time-limit: {shown}")
        for note in data.get("notes", []):
            lines.append(f"\n{label}: {note}")
        if data.get("interrupted"):
            lines.append(f"\n{label}: interrupted; later steps and databases were not measured")
    return "\n".join(lines)
