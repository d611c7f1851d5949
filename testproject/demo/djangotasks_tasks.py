"""Tasks that the djangotasks tests and tools drive.

They are ``django.tasks`` tasks (Django 6.0+), defined in :mod:`djangotasks_django`; on
older Django there is nothing to define.
"""

from __future__ import annotations

from importlib.util import find_spec

if find_spec("django.tasks") is not None:
    from testproject.demo import djangotasks_django  # noqa: F401
