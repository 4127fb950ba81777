"""Errors a service raises for a caller to show: one clear line, nothing written.

Messages speak the clinic's words, never an entry point's: a service does not know whether it
was called by `checkin`, the API or the dashboard. When the error is about one input, `field`
names it (a domain key such as "by", "phone", "start"), and each entry point adds its own name
for it: the CLI its flag (cli/common.py, FLAGS), the API its body or query field
(web/api/common.py, API_FIELDS).
"""

from __future__ import annotations


class InvalidInput(ValueError):
    """The request is malformed or not allowed; the message says why in one line.

    `field`: the input at fault, as a domain key ("by", "phone", "start", ...), or None when the
    error is about the request as a whole.
    """

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field


class ConcurrentCreate(InvalidInput):
    """A record this transaction just created names an external id that another transaction
    committed for a record of its own meanwhile (two connections creating the same new patient
    at once): a lost race, not bad input. Rolling back and trying again finds the winner's
    record. A caller that does not retry still sees the InvalidInput it also is."""


class NotFound(LookupError):
    """The named record does not exist."""
