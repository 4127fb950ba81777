"""Fixtures for the operations tests: the integration suite's real emulator, SMTP server and
child processes."""

from __future__ import annotations

from tests.integration.conftest import (  # noqa: F401
    smtp_server,
    smtp_server_factory,
    twilio_emulator,
)
from tests.integration.procs import procs  # noqa: F401
