"""``manage.py retrytasks``: look at jobs and act on them from a shell.

Subcommands: ``stats``, ``list``, ``show``, ``retry``, ``cancel``, ``prune``, ``schedules``.
Actions go through the same service functions as the admin, with the same checks; a job an
action skips is reported with the reason, and the command then exits with status 1.
"""

from __future__ import annotations

import argparse
import json
from datetime import UTC, datetime, timedelta
from typing import Any

from django.core.exceptions import ImproperlyConfigured
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.utils import timezone

from django_retrytasks import cron, display, heads, limits, periodic, stats, tasks
from django_retrytasks.jobs import Status
from django_retrytasks.management.commands.runworker import positive_int
from django_retrytasks.models import Attempt, Job, JobStatus, Schedule
from django_retrytasks.store import operations

LIST_COLUMNS = ("id", "status", "task_name", "queue", "attempts", "scheduled_at", "finished_at")
SHOWN_FIELDS = (
    "id",
    "task_name",
    "status",
    "queue",
    "priority",
    "lock",
    "queueing_lock",
    "scheduled_at",
    "attempts",
    "snoozes",
    "created_at",
    "started_at",
    "finished_at",
)
HISTORY_FIELDS = (
    "number",
    "outcome",
    "started_at",
    "finished_at",
    "worker_name",
    "error_type",
    "decision",
    "retry_at",
)
#: Characters ``show`` prints of each long value without --full (a traceback: of its end).
SHOWN = {"arguments": 2_000, "result": 2_000, "error": 2_000, "traceback": 10_000}


def job_id(value: str) -> int:
    try:
        return positive_int(value)
    except argparse.ArgumentTypeError:
        raise argparse.ArgumentTypeError(
            f"{value!r} is not a job id (a whole number >= 1)"
        ) from None


def days(value: str) -> float:
    try:
        number = float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r} is not a number of days") from None
    if not 0 < number < 1_000_000:
        raise argparse.ArgumentTypeError(f"a number of days > 0 is needed, got {value}")
    return number


def _plain(value: Any) -> Any:
    return value.isoformat() if hasattr(value, "isoformat") else value


def schedule_overview(now: datetime) -> list[dict[str, Any]]:
    """The schedules declared in code and those stored, with their state, next and last tick."""
    declared = {item.key: item for item in periodic.declared_schedules(tasks.app)}
    rows = {
        (row.task_name, row.periodic_id): row for row in Schedule.objects.select_related("last_job")
    }
    found = []
    for key in sorted(declared.keys() | rows.keys()):
        schedule, row = declared.get(key), rows.get(key)
        last_tick = row.last_tick if row is not None else None
        last_job = row.last_job if row is not None else None
        paused = row is not None and row.paused_at is not None
        zone = schedule.zone() if schedule is not None else UTC
        upcoming = [] if schedule is None or paused else schedule.upcoming(now, last_tick=last_tick)
        found.append(
            {
                "task_name": key[0],
                "periodic_id": key[1],
                "cron": str(schedule.cron) if schedule is not None else None,
                "timezone": schedule.zone_name if schedule is not None else None,
                "state": "not declared" if schedule is None else "paused" if paused else "active",
                "next_tick": cron.moment(upcoming[0], zone).isoformat() if upcoming else None,
                "last_tick": cron.moment(last_tick, zone).isoformat() if last_tick else None,
                "last_job_id": last_job.pk if last_job is not None else None,
                "last_job_status": last_job.status if last_job is not None else None,
            }
        )
    return found


class Command(BaseCommand):
    help = "Inspect and manage retrytasks jobs: stats, list, show, retry, cancel, prune, schedules."

    def add_arguments(self, parser: CommandParser) -> None:
        sub = parser.add_subparsers(dest="subcommand", required=True, metavar="SUBCOMMAND")

        stats_parser = sub.add_parser(
            "stats", help="Counts by state and queue, oldest due job, retries, recent failures."
        )
        stats_parser.add_argument("--json", dest="as_json", action="store_true", help="Print JSON.")

        list_parser = sub.add_parser("list", help="List jobs, newest first.")
        list_parser.add_argument(
            "--status", choices=JobStatus.values, action="append", help="Repeatable."
        )
        list_parser.add_argument(
            "--pending-retries", action="store_true", help="Only jobs waiting for a retry."
        )
        list_parser.add_argument("--task", help="Only jobs of this task name.")
        list_parser.add_argument("--queue", help="Only jobs in this queue.")
        list_parser.add_argument("--limit", type=positive_int, default=50, help="Default 50.")
        list_parser.add_argument("--json", dest="as_json", action="store_true", help="Print JSON.")

        show_parser = sub.add_parser("show", help="One job with the history of its runs.")
        show_parser.add_argument("job_id", type=job_id)
        show_parser.add_argument(
            "--tracebacks", action="store_true", help="Print each failed run's traceback."
        )
        show_parser.add_argument(
            "--full",
            action="store_true",
            help="Print long values whole: arguments, return value, error messages, tracebacks "
            f"(else cut at {SHOWN['arguments']:,} characters, {SHOWN['traceback']:,} of the "
            "end of a traceback).",
        )
        show_parser.add_argument("--json", dest="as_json", action="store_true", help="Print JSON.")

        for name, text in (
            ("retry", "Run jobs now: waiting jobs are brought forward, ended ones requeued."),
            ("cancel", "Cancel waiting jobs."),
        ):
            action_parser = sub.add_parser(name, help=text)
            action_parser.add_argument("job_ids", type=job_id, nargs="+", metavar="JOB_ID")

        prune_parser = sub.add_parser(
            "prune", help="Delete finished jobs (and their runs) older than the retention."
        )
        prune_parser.add_argument(
            "--succeeded-days", type=days, help="Age limit of succeeded jobs, overriding settings."
        )
        prune_parser.add_argument(
            "--failed-days",
            type=days,
            help="Age limit of failed (and cancelled, aborted) jobs, overriding settings.",
        )
        prune_parser.add_argument("--batch-size", type=positive_int, help="Jobs per transaction.")
        prune_parser.add_argument(
            "--dry-run", action="store_true", help="Only count what would be deleted."
        )

        schedules_parser = sub.add_parser(
            "schedules", help="Periodic schedules: cron, time zone, state, next tick, last job."
        )
        schedules_parser.add_argument(
            "--json", dest="as_json", action="store_true", help="Print JSON."
        )

    def handle(self, *args: Any, **options: Any) -> None:
        handler = getattr(self, f"handle_{options['subcommand']}")
        handler(**options)

    # --- reading ------------------------------------------------------------------------

    def handle_stats(self, *, as_json: bool, **options: Any) -> None:
        numbers = stats.collect()
        if as_json:
            self._print_json(numbers)
            return
        self.stdout.write("Jobs by state: " + self._counts(numbers["by_state"]))
        for queue, counts in numbers["by_queue"].items():
            self._line(f"  queue {queue}: {self._counts(counts)}")
        self.stdout.write(f"Due now: {numbers['due_now']}")
        self.stdout.write(f"Scheduled for later: {numbers['scheduled_later']}")
        self.stdout.write(f"Pending retries: {numbers['pending_retries']}")
        oldest = numbers["oldest_waiting"]
        if oldest:
            self._line(
                f"Oldest due job: #{oldest['job_id']} {oldest['task_name']} "
                f"(queue {oldest['queue']}), waiting {oldest['waiting_seconds']:.0f}s"
            )
        else:
            self.stdout.write("Oldest due job: none")
        self.stdout.write(f"Failed runs in the last hour: {numbers['failed_runs_last_hour']}")
        self.stdout.write(f"Jobs failed in the last hour: {numbers['jobs_failed_last_hour']}")
        self.stdout.write(f"Workers: {numbers['workers']}")

    def handle_list(
        self,
        *,
        status: list[str] | None,
        pending_retries: bool,
        task: str | None,
        queue: str | None,
        limit: int,
        as_json: bool,
        **options: Any,
    ) -> None:
        jobs = Job.objects.all()
        if status:
            jobs = jobs.filter(status__in=status)
        if pending_retries:
            jobs = jobs.pending_retries()
        if task:
            jobs = jobs.filter(task_name=task)
        if queue:
            jobs = jobs.filter(queue=queue)
        rows = [
            {name: _plain(value) for name, value in row.items()}
            for row in jobs.order_by("-id").values(*LIST_COLUMNS)[:limit]
        ]
        if as_json:
            self._print_json(rows)
            return
        if not rows:
            self.stdout.write("No jobs match.")
            return
        for row in rows:
            when = row["finished_at"] if row["status"] in Status.FINISHED else row["scheduled_at"]
            self._line(
                f"#{row['id']:<8} {row['status']:<10} {row['task_name']} queue={row['queue']} "
                f"attempts={row['attempts']} {'at' if when else ''} {when or ''}".rstrip()
            )

    def handle_show(
        self, *, job_id: int, tracebacks: bool, as_json: bool, full: bool, **options: Any
    ) -> None:
        row = Job.objects.filter(pk=job_id).values(*SHOWN_FIELDS).first()
        if row is None:
            raise CommandError(f"no job #{job_id}")
        fields = {name: _plain(value) for name, value in row.items()}
        for what, name in (("arguments", "task_kwargs"), ("result", "return_value")):
            fields[name] = self._json_value(job_id, what, full=full, as_json=as_json)
        attempts = heads.with_attempt_heads(
            Attempt.objects.filter(job_id=job_id).order_by("number", "id"),
            error_chars=SHOWN["error"],
            traceback_chars=SHOWN["traceback"],
        )
        history = []
        for attempt in attempts:
            run = {name: _plain(getattr(attempt, name)) for name in HISTORY_FIELDS}
            run["error_message"] = self._text(attempt, "error", full=full)
            if tracebacks or as_json:
                run["traceback"] = self._text(attempt, "traceback", full=full)
            history.append(run)
        if as_json:
            self._print_json({**fields, "history": history})
            return
        for name, value in fields.items():
            self._line(f"{name}: {value}")
        self.stdout.write(f"history ({len(history)} runs):")
        for run in history:
            error = f" {run['error_type']}: {run['error_message']}" if run["error_type"] else ""
            self._line(
                f"  {run['number']}. {run['outcome']} {run['started_at']} -> {run['finished_at']}"
                f"{error}",
                multiline=True,
            )
            if run["decision"]:
                self._line(f"     decision: {run['decision']}")
            if tracebacks and run.get("traceback"):
                self._line(
                    "     " + run["traceback"].rstrip().replace("\n", "\n     "), multiline=True
                )

    def _json_value(self, job_id: int, what: str, *, full: bool, as_json: bool) -> Any:
        """A job's arguments or return value: JSON data when it can be read back whole,
        else (cut, or nested too deep for Python) its stored text."""
        if full:
            text = heads.whole(what, job_id=job_id)
            length = len(text or "")
        else:
            text, length = heads.job_value_heads(job_id, SHOWN["arguments"])[what]
        if text is None:
            return None
        if length <= len(text):
            try:
                value = json.loads(text)
            except (RecursionError, ValueError):
                return text  # stored nested too deep for Python to read back
            return value if as_json else display.json_text(value, indent=None)
        return limits.cut_text(text, SHOWN[what], length=length)

    @staticmethod
    def _text(attempt: Any, what: str, *, full: bool) -> str:
        if full:
            return heads.whole(what, job_id=attempt.job_id, attempt_id=attempt.pk) or ""
        if what == "error":
            return limits.cut_text(attempt.error_head, SHOWN["error"], length=attempt.error_length)
        return limits.cut_start(
            attempt.traceback_tail, SHOWN["traceback"], length=attempt.traceback_length
        )

    def handle_schedules(self, *, as_json: bool, **options: Any) -> None:
        try:
            found = schedule_overview(timezone.now())
        except ImproperlyConfigured as error:
            raise CommandError(str(error)) from error
        if as_json:
            self._print_json(found)
            return
        if not found:
            self.stdout.write("No periodic schedules.")
            return
        for item in found:
            name = item["task_name"] + (f"[{item['periodic_id']}]" if item["periodic_id"] else "")
            job = (
                f"#{item['last_job_id']} {item['last_job_status']}" if item["last_job_id"] else "-"
            )
            self._line(
                f"{name} cron={item['cron'] or '-'} tz={item['timezone'] or '-'} {item['state']} "
                f"next={item['next_tick'] or '-'} last_tick={item['last_tick'] or '-'} "
                f"last_job={job}"
            )

    # --- acting -------------------------------------------------------------------------

    def handle_retry(self, *, job_ids: list[int], **options: Any) -> None:
        self._report("retried", operations.retry_now(job_ids))

    def handle_cancel(self, *, job_ids: list[int], **options: Any) -> None:
        self._report("cancelled", operations.cancel(job_ids))

    def handle_prune(
        self,
        *,
        succeeded_days: float | None,
        failed_days: float | None,
        batch_size: int | None,
        dry_run: bool,
        **options: Any,
    ) -> None:
        retention: dict[str, timedelta | None] = {}
        if succeeded_days is not None:
            retention[Status.SUCCEEDED] = timedelta(days=succeeded_days)
        if failed_days is not None:
            for state in (Status.FAILED, Status.CANCELLED, Status.ABORTED):
                retention[state] = timedelta(days=failed_days)
        try:
            report = operations.prune(retention=retention, batch_size=batch_size, dry_run=dry_run)
        except ImproperlyConfigured as error:
            raise CommandError(str(error)) from error
        verb = "Would delete" if dry_run else "Deleted"
        detail = ", ".join(f"{state} {count}" for state, count in report.jobs.items())
        self.stdout.write(
            f"{verb} {report.total} jobs ({detail or 'retention keeps everything'}) "
            f"and {report.attempts} runs."
        )

    # --- output -------------------------------------------------------------------------

    def _report(self, verb: str, report: operations.ActionReport) -> None:
        for done in report.done:
            self.stdout.write(f"#{done} {verb}")
        for skipped, reason in report.skipped.items():
            self.stderr.write(display.escape_controls(f"#{skipped} skipped: {reason}"))
        if report.skipped:
            raise CommandError(f"{len(report.skipped)} of the jobs were skipped", returncode=1)

    def _line(self, text: str, *, multiline: bool = False) -> None:
        """Print ``text`` from job data with its control characters escaped: a job's text
        must not be able to drive the terminal (move the cursor, retitle, clear)."""
        self.stdout.write(display.escape_controls(text, multiline=multiline))

    def _print_json(self, value: Any) -> None:
        # ensure_ascii: control characters, and every other non-ASCII one, come out escaped.
        self.stdout.write(json.dumps(value, indent=2, sort_keys=True, default=str))

    @staticmethod
    def _counts(counts: dict[str, int]) -> str:
        return ", ".join(f"{state} {count}" for state, count in counts.items())
