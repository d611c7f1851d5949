"""The exceptions of django-retrytasks. Each docstring is the default message."""

from __future__ import annotations


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
