"""Tasks that the concurrency tests and tools drive."""

from __future__ import annotations
