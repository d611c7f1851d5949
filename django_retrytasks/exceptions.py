"""The exceptions of django-retrytasks. Each docstring is the default message."""

from __future__ import annotations

from django_retrytasks.durations import delay_to_seconds


class RetryTasksError(Exception):
    """Something went wrong in django-retrytasks."""

    def __init__(self, message: str | None = None) -> None:
        super().__init__(message or (self.__doc__ or "").strip())


class AlreadyEnqueued(RetryTasksError):
    """A job with this queueing lock is already waiting; nothing was stored."""


class ArgumentsNotSerializable(TypeError):
    """Job arguments must be JSON: str, int, float, bool, None, lists and dicts with str keys."""


class WorkerLost(Exception):
    """The worker running this job stopped without recording the outcome of the run."""


class UnknownTask(RetryTasksError):
    """No task is registered under this name."""


class JobTimeout(Exception):
    """The run took longer than the task's timeout."""


class Snooze(Exception):
    """The task asks to run again later without using up an attempt."""

    def __init__(self, seconds: float = 0, **delay: float) -> None:
        total = delay_to_seconds({"seconds": seconds, **delay}, name="Snooze delay")
        if total < 0:
            raise ValueError(f"a snooze lasts 0 seconds or more, got {total:g}")
        self.seconds = total
        super().__init__(f"snoozed for {total:g}s")


class SnoozeLimitReached(RetryTasksError):
    """The task snoozed more times than its max_snoozes; this run counts as a failure."""


class GiveUp(Exception):
    """The task asks to stop now: the job ends failed without any further retry."""

    def __init__(self, reason: str = "the task gave up") -> None:
        self.reason = str(reason)
        super().__init__(self.reason)


class ArgumentsTooLarge(ArgumentsNotSerializable, ValueError):
    """Job arguments are larger than RETRYTASKS_MAX_ARGUMENTS_SIZE allows; nothing was stored."""
