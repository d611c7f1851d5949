"""Task timeouts: ``@app.task(timeout=seconds)``, for plain functions and ``async def`` ones.

A Python thread cannot be killed from outside. At the deadline the worker raises
:class:`~django_retrytasks.exceptions.JobTimeout` *inside* the thread running the task
(CPython's ``PyThreadState_SetAsyncExc``); the interpreter delivers it at the task's
next Python instruction. So:

- Python code (loops, calls between Python functions) stops at once;
- a blocking call in C (``time.sleep(60)``, a socket read without a timeout, a long
  database query) is not interrupted: the exception arrives when the call returns. Give
  such calls their own timeouts (``requests.get(..., timeout=5)``, ``statement_timeout``),
  or sleep in short slices;
- code that catches ``Exception`` broadly may swallow it. Whatever the task does then,
  a run that outlived its deadline is recorded as failed with ``JobTimeout``, and the
  task's retry strategy decides as for any failure.

Only one run of a job ever executes at a time: the worker waits for the thread to stop
rather than abandoning it, so a slow task keeps its concurrency slot until it returns.

An ``async def`` task is cancelled at its deadline instead (``asyncio.timeout``): it stops
at its next ``await``.
"""

from __future__ import annotations

import asyncio
import ctypes
import threading
from collections.abc import Awaitable
from types import TracebackType

from django_retrytasks.exceptions import JobTimeout


def _set_async_exception(thread_id: int, exception: type[BaseException] | None) -> None:
    # NULL (None) clears an exception that was set but not delivered yet.
    ctypes.pythonapi.PyThreadState_SetAsyncExc(
        ctypes.c_ulong(thread_id), ctypes.py_object(exception) if exception else None
    )


class Deadline:
    """Context manager: raise :class:`JobTimeout` in the current thread after ``seconds``.

    ``expired`` tells afterwards whether the deadline passed while the block ran. A
    pending exception that was not delivered before the block ended is cleared on exit,
    so it never reaches the worker's own code.
    """

    def __init__(self, seconds: float | None) -> None:
        self.seconds = seconds
        self.expired = False
        self._armed = False
        self._lock = threading.Lock()
        self._timer: threading.Timer | None = None
        self._thread_id = 0

    def __enter__(self) -> Deadline:
        if self.seconds is not None:
            self._thread_id = threading.get_ident()
            self._armed = True
            self._timer = threading.Timer(self.seconds, self._expire)
            self._timer.daemon = True
            self._timer.start()
        return self

    def _expire(self) -> None:
        with self._lock:
            if self._armed:
                self.expired = True
                _set_async_exception(self._thread_id, JobTimeout)

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if self._timer is None:
            return
        with self._lock:
            self._armed = False
            self._timer.cancel()
            if self.expired:
                _set_async_exception(self._thread_id, None)

    def error(self) -> JobTimeout:
        """The error recorded for a run that outlived its deadline."""
        assert self.seconds is not None
        return _too_late(self.seconds)


def await_within[T](awaitable: Awaitable[T], seconds: float | None) -> T:
    """Run an ``async def`` task's coroutine to its end, on an event loop of its own.

    Through asgiref's ``async_to_sync``, as Django runs async code from sync code: the
    task's ``sync_to_async`` calls (the ORM's ``a*`` methods included) come back to this
    thread and its database connection. Past ``seconds`` the coroutine is cancelled and
    :class:`JobTimeout` raised; a coroutine that swallows the cancellation and returns
    late is still too late.
    """
    from asgiref.sync import async_to_sync

    async def bounded() -> T:
        if seconds is None:
            return await awaitable
        scope = asyncio.timeout(seconds)
        try:
            async with scope:
                result = await awaitable
        except TimeoutError:
            if scope.expired():
                raise _too_late(seconds) from None
            raise
        if scope.expired():
            raise _too_late(seconds)
        return result

    return async_to_sync(bounded)()


def _too_late(seconds: float) -> JobTimeout:
    return JobTimeout(f"the run took longer than the task's timeout of {seconds:g}s")
