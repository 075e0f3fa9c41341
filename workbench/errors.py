"""The one base of every error the workbench raises on purpose, so a caller can catch them all."""

from __future__ import annotations


class WorkbenchError(Exception):
    """A user-facing problem: the message is one line naming the file or setting and what to do."""


class ConfigError(WorkbenchError, ValueError):
    """A setting is invalid; the message says which and what to do."""
