"""Tasks that the ops tests and tools drive."""

from __future__ import annotations
