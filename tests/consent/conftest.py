"""A runtime with the consent texts on, as a default installation has them."""

from __future__ import annotations

import io
from collections.abc import Iterator

import pytest

from tests.conftest import make_settings
from worker.channels import Channels
from worker.channels.console import ConsoleEmail, ConsoleSms
from worker.services.runtime import Runtime, build_runtime


@pytest.fixture
def texts() -> Channels:
    return Channels(sms=ConsoleSms(io.StringIO()), email=ConsoleEmail(io.StringIO()))


@pytest.fixture
def crt(db_url: str, texts: Channels) -> Iterator[Runtime]:
    runtime = build_runtime(
        make_settings(db_url, optin_confirmation=True, stop_reminder="monthly"), channels=texts
    )
    yield runtime
    runtime.close()
