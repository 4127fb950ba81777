"""The development backend: messages are printed to a terminal instead of being sent.

The stream is the developer's terminal (sys.stdout by default, looked up at each send so that
pytest's capture and redirections work), not a log: it shows bodies and addresses on purpose,
so never point it at a log file in production.
"""

from __future__ import annotations

import sys
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import TextIO

from worker.channels import ProviderMessage, SendResult
from worker.config import real_now
from worker.domain.sms_text import encoding, segments

_RULE = "-" * 60


@dataclass(frozen=True)
class ConsoleSmsRecord:
    provider_id: str
    to: str
    body: str
    status_callback: str | None
    at: datetime
    sender: str | None = None  # when not the default sender (on-call pages)


@dataclass(frozen=True)
class ConsoleEmailRecord:
    provider_id: str
    to: str
    subject: str
    text: str
    html: str | None
    message_id: str
    at: datetime


class _ConsoleBase:
    name = "console"

    def __init__(
        self, stream: TextIO | None = None, *, clock: Callable[[], datetime] = real_now
    ) -> None:
        self._stream = stream
        # The settings' clock (build_channels passes it), so that a CHECKIN_CLOCK rehearsal
        # stamps what the console "sent" with the rehearsal's time, as the rows are.
        self._clock = clock
        self._lock = threading.Lock()

    def _write(self, block: str) -> None:
        stream = self._stream if self._stream is not None else sys.stdout
        stream.write(block)
        stream.flush()


class ConsoleSms(_ConsoleBase):
    """Prints each SMS as a block; keeps what it "sent" in `.sent` (thread-safe)."""

    can_reconcile = False

    def __init__(
        self, stream: TextIO | None = None, *, clock: Callable[[], datetime] = real_now
    ) -> None:
        super().__init__(stream, clock=clock)
        self._sent: list[ConsoleSmsRecord] = []

    @property
    def sent(self) -> list[ConsoleSmsRecord]:
        with self._lock:
            return list(self._sent)

    def send_sms(
        self, to: str, body: str, *, status_callback: str | None = None, sender: str | None = None
    ) -> SendResult:
        record = ConsoleSmsRecord(
            provider_id=f"console-{uuid.uuid4().hex}",
            to=to,
            body=body,
            status_callback=status_callback,
            at=self._clock(),
            sender=sender,
        )
        parts = segments(body)
        block = (
            f"{_RULE}\nSMS to {to}  [{record.provider_id}]\n{_RULE}\n{body}\n"
            f"{_RULE} {parts} segment{'s' if parts != 1 else ''}, {encoding(body)}\n\n"
        )
        with self._lock:  # one lock for write and append: blocks never interleave
            self._write(block)
            self._sent.append(record)
        return SendResult(provider_id=record.provider_id, segments=parts or None, status="sent")

    def find_sent(self, to: str, since: datetime) -> list[ProviderMessage]:
        return []


class ConsoleEmail(_ConsoleBase):
    """Prints each email (headers, text part, and the size of any HTML part); keeps `.sent`."""

    def __init__(
        self, stream: TextIO | None = None, *, clock: Callable[[], datetime] = real_now
    ) -> None:
        super().__init__(stream, clock=clock)
        self._sent: list[ConsoleEmailRecord] = []

    @property
    def sent(self) -> list[ConsoleEmailRecord]:
        with self._lock:
            return list(self._sent)

    def send_email(
        self, to: str, subject: str, text: str, html: str | None, *, message_id: str
    ) -> SendResult:
        record = ConsoleEmailRecord(
            provider_id=f"console-{uuid.uuid4().hex}",
            to=to,
            subject=subject,
            text=text,
            html=html,
            message_id=message_id,
            at=self._clock(),
        )
        html_note = "" if html is None else f"\n[HTML alternative: {len(html)} characters]"
        block = (
            f"{_RULE}\nEmail to {to}  [{record.provider_id}]\n"
            f"Subject: {subject}\nMessage-ID: {message_id}\n{_RULE}\n"
            f"{text.rstrip()}{html_note}\n{_RULE}\n\n"
        )
        with self._lock:
            self._write(block)
            self._sent.append(record)
        return SendResult(provider_id=record.provider_id, segments=None, status="sent")
