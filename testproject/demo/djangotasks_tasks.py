"""Tasks that the djangotasks tests and tools drive.

They are ``django.tasks`` tasks defined in :mod:`djangotasks_django` with ``@task(retry=...)``,
which needs Django 6.1; on 6.0 :mod:`djangotasks_60` has its own, and on 5.2 there is none.
"""

from __future__ import annotations

import django

if django.VERSION >= (6, 1):
    from testproject.demo import djangotasks_django  # noqa: F401
elif django.VERSION >= (6, 0):
    from testproject.demo import djangotasks_60  # noqa: F401
