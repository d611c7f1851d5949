"""A module of an installed app that no setting lists: a job row naming it must not import it."""

from __future__ import annotations

raise AssertionError("imported because a job row named it")
