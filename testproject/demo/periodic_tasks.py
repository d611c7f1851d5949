"""A schedule every second, for the tests that run several ``runworker`` processes.

Only ``testproject.periodic_settings`` imports this module: with the test project's own
settings no worker defers it, so the other tests' workers see no periodic schedule.
"""

from __future__ import annotations

from django_retrytasks import app


@app.periodic(cron="* * * * * *", periodic_id="every-second")
@app.task(name="periodic.every_second")
def every_second(timestamp: int) -> int:
    return timestamp
