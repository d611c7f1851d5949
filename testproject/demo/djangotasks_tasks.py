"""Tasks that the djangotasks tests and tools drive.

They are ``django.tasks`` tasks defined in :mod:`djangotasks_django` with ``@task(retry=...)``,
which needs Django 6.1; on older Django there is nothing to define.
"""

from __future__ import annotations

import django

if django.VERSION >= (6, 1):
    from testproject.demo import djangotasks_django  # noqa: F401
