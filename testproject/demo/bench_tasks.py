"""Tasks that the bench tests and tools drive."""

from __future__ import annotations
