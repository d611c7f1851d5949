"""The test project's settings with a periodic schedule every second (see
``testproject.demo.periodic_tasks``), for ``runworker`` subprocesses of the periodic tests."""

from __future__ import annotations

from testproject.settings import *  # noqa: F403
from testproject.settings import RETRYTASKS_TASK_MODULES

RETRYTASKS_TASK_MODULES = [*RETRYTASKS_TASK_MODULES, "testproject.demo.periodic_tasks"]
