"""For migrations that install PostgreSQL objects (functions) and do nothing elsewhere."""

from __future__ import annotations

from typing import Any

from django.db import migrations


def postgres_only(create: str, drop: str) -> migrations.RunPython:
    """Run ``create`` on PostgreSQL when migrating forwards, ``drop`` when backwards.

    Each is sent as it is, without parameters: a script may hold several statements, and
    PL/pgSQL % signs that are not placeholders.
    """

    def forwards(apps: Any, schema_editor: Any) -> None:
        if schema_editor.connection.vendor == "postgresql":
            schema_editor.execute(create, params=None)

    def backwards(apps: Any, schema_editor: Any) -> None:
        if schema_editor.connection.vendor == "postgresql":
            schema_editor.execute(drop, params=None)

    return migrations.RunPython(forwards, backwards, elidable=False)
