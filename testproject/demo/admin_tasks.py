"""Tasks that the admin tests and tools drive."""

from __future__ import annotations
