"""Errors a service raises for a caller to show: one clear line, nothing written."""

from __future__ import annotations


class InvalidInput(ValueError):
    """The request is malformed or not allowed; the message says why in one line."""


class NotFound(LookupError):
    """The named record does not exist."""
