"""What every model admin here shares: no one writes through Django's own views, and pages read
in one transaction, without PostgreSQL's JIT compilation."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from django.db import connections, router, transaction
from django.http import HttpRequest, HttpResponse

from django_retrytasks.models import Job


class ReadOnly:
    """No one adds, edits or deletes rows through Django's own views.

    State changes go through the actions and so through :mod:`django_retrytasks.store.operations`
    (Django's delete view, for one, would delete running jobs).
    """

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@contextmanager
def page_reads() -> Iterator[None]:
    """One transaction for a page's reads (the count and the rows agree); on PostgreSQL with
    JIT compilation off for it.

    PostgreSQL compiles a query whose estimated cost passes ``jit_above_cost``: with 100,000
    jobs, the admin's counts and correlated subqueries pass it, and compiling took 0.2 to 0.4 s
    a query, more than running it. ``SET LOCAL`` ends with the transaction.
    """
    using = router.db_for_read(Job)
    with transaction.atomic(using=using):
        if connections[using].vendor == "postgresql":
            with connections[using].cursor() as cursor:
                cursor.execute("SET LOCAL jit = off")
        yield


def read_page(view: Callable[[], HttpResponse]) -> HttpResponse:
    """Run ``view`` and render its response inside :func:`page_reads` (a template response
    runs its queries when rendered, after the view returns)."""
    with page_reads():
        response = view()
        render = getattr(response, "render", None)
        if callable(render) and not getattr(response, "is_rendered", True):
            render()
    return response


class ReadPages:
    """The list and the object page of a model admin, read through :func:`read_page`."""

    def changelist_view(self, request: HttpRequest, extra_context: Any = None) -> HttpResponse:
        parent: Any = super()
        if request.method != "GET":  # actions write through their own transactions
            return parent.changelist_view(request, extra_context)
        return read_page(lambda: parent.changelist_view(request, extra_context))

    def change_view(
        self, request: HttpRequest, object_id: str, form_url: str = "", extra_context: Any = None
    ) -> HttpResponse:
        parent: Any = super()
        if request.method != "GET":
            return parent.change_view(request, object_id, form_url, extra_context)
        return read_page(lambda: parent.change_view(request, object_id, form_url, extra_context))
