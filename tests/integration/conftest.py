"""Fixtures for integration tests: a Twilio emulator and an SMTP server, both real, on loopback."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, LoginPassword, Session
from checkin_emulator import TwilioEmulator


@pytest.fixture
def twilio_emulator() -> Iterator[TwilioEmulator]:
    """A started Twilio emulator on 127.0.0.1 with a free port, stopped after the test."""
    with TwilioEmulator(host="127.0.0.1", port=0) as emulator:
        yield emulator


def free_port() -> int:
    """A loopback port nothing listens on (bound then released)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def closed_port() -> int:
    """A loopback port with nothing listening: connections to it are refused at once."""
    return free_port()


@dataclass
class ReceivedMail:
    mail_from: str
    rcpt_tos: list[str]
    content: bytes
    login: str | None


@dataclass
class CollectingHandler:
    """Collects envelopes; `data_reply` or `rcpt_reply` make the server refuse instead, and
    `data_delay` holds the final reply to DATA (to make a client time out after sending)."""

    received: list[ReceivedMail] = field(default_factory=list)
    data_reply: str = "250 Message accepted for delivery"
    rcpt_reply: str | None = None
    data_delay: float = 0.0

    async def handle_RCPT(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, options: Any
    ) -> str:
        if self.rcpt_reply is not None:
            return self.rcpt_reply
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        if self.data_delay:
            await asyncio.sleep(self.data_delay)
        if self.data_reply.startswith("250"):
            auth = session.auth_data if session.authenticated else None
            login = auth.login.decode() if isinstance(auth, LoginPassword) else None
            self.received.append(
                ReceivedMail(
                    mail_from=str(envelope.mail_from),
                    rcpt_tos=list(envelope.rcpt_tos),
                    content=bytes(envelope.original_content or b""),
                    login=login,
                )
            )
        return self.data_reply


@dataclass
class SmtpServer:
    host: str
    port: int
    handler: CollectingHandler
    controller: Controller


SmtpFactory = Callable[..., SmtpServer]


@pytest.fixture
def smtp_server_factory() -> Iterator[SmtpFactory]:
    """Start aiosmtpd Controllers on loopback with the given SMTP options; all stopped after."""
    started: list[Controller] = []

    def start(**smtp_kwargs: Any) -> SmtpServer:
        handler = CollectingHandler()
        port = free_port()
        controller = Controller(
            handler,
            hostname="127.0.0.1",
            port=port,
            server_hostname="localhost",  # skips a reverse DNS lookup per session
            ready_timeout=5.0,
            **smtp_kwargs,
        )
        controller.start()
        started.append(controller)
        return SmtpServer("127.0.0.1", port, handler, controller)

    yield start
    for controller in started:
        controller.stop()


@pytest.fixture
def smtp_server(smtp_server_factory: SmtpFactory) -> SmtpServer:
    """An aiosmtpd server on loopback whose handler collects what it receives."""
    return smtp_server_factory()


# Real child processes (beat, workers) for the end-to-end tests.
from tests.integration.procs import procs  # noqa: E402, F401
