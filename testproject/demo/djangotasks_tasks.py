"""Tasks that the djangotasks tests and tools drive."""

from __future__ import annotations
