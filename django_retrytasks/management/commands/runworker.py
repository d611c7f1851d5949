"""``manage.py runworker``: a thin adapter from the command line to :class:`Worker`."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from typing import Any

from django.core.management.base import BaseCommand, CommandError

from django_retrytasks import queues
from django_retrytasks.worker import DEFAULT_POLLING_INTERVAL, Worker

VERBOSITY_LEVELS = {0: logging.WARNING, 1: logging.INFO, 2: logging.DEBUG, 3: logging.DEBUG}


def positive_int(value: str) -> int:
    try:
        number = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r} is not a whole number") from None
    if number < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {number}")
    return number


def positive_seconds(value: str) -> float:
    try:
        seconds = float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r} is not a number of seconds") from None
    if not seconds > 0 or seconds == float("inf"):
        raise argparse.ArgumentTypeError(f"must be a number of seconds > 0, got {value}")
    return seconds


def queue_list(value: str) -> list[str]:
    queues = [name.strip() for name in value.split(",") if name.strip()]
    if not queues:
        raise argparse.ArgumentTypeError("name at least one queue, e.g. --queues default,emails")
    return queues


class Command(BaseCommand):
    help = "Run jobs from the database: claim due jobs, run them, retry them by their strategy."

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument(
            "--queues",
            type=queue_list,
            default=None,
            help="Comma-separated queues to take jobs from (default: all queues).",
        )
        parser.add_argument(
            "--concurrency",
            type=positive_int,
            default=1,
            help="How many jobs run at a time in this process, each on its own thread (default 1).",
        )
        parser.add_argument(
            "--burst",
            action="store_true",
            help="Run every job that is due now (and retries due at once), then exit.",
        )
        parser.add_argument(
            "--polling-interval",
            type=positive_seconds,
            default=DEFAULT_POLLING_INTERVAL,
            help="Seconds between checks for new jobs when idle "
            f"(default {DEFAULT_POLLING_INTERVAL}).",
        )
        parser.add_argument(
            "--shutdown-timeout",
            type=positive_seconds,
            default=None,
            help="On SIGTERM/SIGINT, wait at most this many seconds for running jobs, then "
            "return them to the queue (default: wait for them however long they take).",
        )
        parser.add_argument(
            "--heartbeat-interval",
            type=positive_seconds,
            default=None,
            help="Seconds between heartbeats, which also look for jobs lost with dead workers "
            "(default: RETRYTASKS_HEARTBEAT_INTERVAL or 10).",
        )
        parser.add_argument(
            "--heartbeat-timeout",
            type=positive_seconds,
            default=None,
            help="Seconds without a heartbeat after which a worker is taken for dead and its "
            "running jobs are recovered (default: RETRYTASKS_HEARTBEAT_TIMEOUT or 60).",
        )
        parser.add_argument(
            "--max-consecutive-losses",
            type=positive_int,
            default=None,
            help="Hold a job lost with its worker this many times in a row instead of retrying "
            "it (default: RETRYTASKS_MAX_CONSECUTIVE_LOSSES or 3).",
        )
        parser.add_argument(
            "--no-periodic",
            action="store_true",
            help="Do not defer the jobs of periodic schedules (by default every worker does; "
            "the database keeps it to one job per tick).",
        )
        parser.add_argument(
            "--name", default=None, help="This worker's name (default: host-pid-random)."
        )

    def handle(self, *args: Any, **options: Any) -> None:
        level = VERBOSITY_LEVELS.get(options["verbosity"], logging.DEBUG)
        package_logger = logging.getLogger("django_retrytasks")
        package_logger.setLevel(level)
        if not package_logger.handlers and not logging.getLogger().handlers:
            handler = logging.StreamHandler(sys.stderr)
            handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
            package_logger.addHandler(handler)
        if options["queues"]:
            unknown, known = queues.unknown_queues(options["queues"])
            if unknown:
                package_logger.warning(
                    "No registered task declares, and no stored job uses, the queue%s %s; the "
                    "known queues are: %s. Starting anyway.",
                    "s" if len(unknown) > 1 else "",
                    ", ".join(map(repr, unknown)),
                    ", ".join(known) or "none",
                )
        try:
            worker = Worker(
                queues=options["queues"],
                concurrency=options["concurrency"],
                burst=options["burst"],
                polling_interval=options["polling_interval"],
                shutdown_timeout=options["shutdown_timeout"],
                heartbeat_interval=options["heartbeat_interval"],
                heartbeat_timeout=options["heartbeat_timeout"],
                name=options["name"],
                periodic=not options["no_periodic"],
                **(
                    {"max_consecutive_losses": options["max_consecutive_losses"]}
                    if options["max_consecutive_losses"] is not None
                    else {}
                ),
            )
        except ValueError as error:
            raise CommandError(str(error)) from error
        worker.run()
        if worker.abandoned_runs:
            # Stopped at once (a second signal): runs returned to the queue still go on in
            # threads that cannot be stopped, so end the process without waiting for them.
            logging.shutdown()
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(0)
