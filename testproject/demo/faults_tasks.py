"""Tasks that the faults tests and tools drive."""

from __future__ import annotations
