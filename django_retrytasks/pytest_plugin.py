"""A pytest plugin with the ``retrytasks_runner`` fixture (needs pytest-django).

Installed packages register it through the ``pytest11`` entry point, so the fixture is
available in every test without an import; ``from django_retrytasks.testing import
retrytasks_runner`` in a ``conftest.py`` works as well. Nothing Django is imported until
the fixture is used, so loading the plugin never touches settings.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from django_retrytasks.testing import JobRunner


@pytest.fixture
def retrytasks_runner(db: Any) -> JobRunner:
    """A :class:`~django_retrytasks.testing.JobRunner`: ``retrytasks_runner.run(advance=True)``."""
    from django_retrytasks.testing import JobRunner

    return JobRunner()
