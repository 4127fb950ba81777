"""Process logging: plain text by default, JSON lines with CHECKIN_LOG_JSON=true.

Whatever the level, every record that reaches the handler has phone numbers, email addresses and
the configured secrets masked, in its message, its arguments and any traceback: a DEBUG line from
a library (the Twilio SDK logs its request URLs, whose query carries the recipient) is masked
like our own INFO lines. Our own code logs ids and outcomes, never bodies.
"""

from __future__ import annotations

import json
import logging
import re
import sys
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import IO, TYPE_CHECKING, Any
from urllib.parse import unquote, urlsplit

if TYPE_CHECKING:
    from worker.config import Settings

PHONE_MASK = "[phone]"
EMAIL_MASK = "[email]"
SECRET_MASK = "[secret]"  # noqa: S105 - the mask, not a secret

_EMAIL = re.compile(r"[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)+")
_PHONES = (
    # E.164, also written with spaces, dots, dashes or brackets: +1 (212) 555-0101.
    re.compile(r"\+\d(?:[\s().-]{0,2}\d){6,14}"),
    # The same URL-encoded, as in a query string: To=%2B12125550101.
    re.compile(r"%2[Bb]\d{7,15}"),
    # A North American number written without the country code: (212) 555-0101, 212-555-0101.
    re.compile(r"(?<!\w)\(?\d{3}\)?[\s.-]{1,2}\d{3}[\s.-]\d{4}(?!\w)"),
)
#: Secrets shorter than this are not masked (they would mask ordinary words); Settings refuses
#: nothing, so a test token of three letters is simply not treated as a secret.
_MIN_SECRET = 6
_MARK = "_checkin_handler"


class Redactor:
    """Masks phone numbers, email addresses and the given secrets in text."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        values = sorted({s for s in secrets if s and len(s) >= _MIN_SECRET}, key=len, reverse=True)
        self._secrets = re.compile("|".join(re.escape(s) for s in values)) if values else None

    def __call__(self, text: str) -> str:
        if self._secrets is not None:
            text = self._secrets.sub(SECRET_MASK, text)
        text = _EMAIL.sub(EMAIL_MASK, text)
        for pattern in _PHONES:
            text = pattern.sub(PHONE_MASK, text)
        return text


def secrets_of(settings: Settings) -> list[str]:
    """Every secret the settings hold: tokens, passwords, keys, and passwords inside URLs."""
    values = [
        field.get_secret_value()
        for field in (
            settings.twilio_auth_token,
            settings.api_token,
            settings.smtp_password,
            settings.secret_key,
        )
        if field is not None
    ]
    urls = (settings.broker_url, settings.redis_url, settings.database_url)
    # A sentinel URL lists several, `;`-separated.
    for url in (part for u in urls if u for part in u.split(";")):
        try:
            password = urlsplit(url).password
        except ValueError:
            password = None
        if password:
            values += [password, unquote(password)]
    return values


class RedactingFilter(logging.Filter):
    """Renders each record's message with its arguments, then masks it (and its traceback).

    On a handler, so it sees records from every logger, propagated or not."""

    def __init__(self, redact: Redactor) -> None:
        super().__init__()
        self.redact = redact

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:
            # A broken format string: keep everything, masked, rather than lose the record.
            message = f"{record.msg!s} {record.args!r}"
        record.msg = self.redact(message)
        record.args = None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = self.redact(record.exc_text)
        if record.stack_info:
            record.stack_info = self.redact(record.stack_info)
        return True


class TextFormatter(logging.Formatter):
    def __init__(self, redact: Redactor) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s: %(message)s")
        self.redact = redact

    def format(self, record: logging.LogRecord) -> str:
        return self.redact(super().format(record))


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time (ISO 8601, UTC), level, logger, message, process, and
    `exc` with the traceback when there is one."""

    def __init__(self, redact: Redactor) -> None:
        super().__init__()
        self.redact = redact

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": self.redact(record.getMessage()),
            "process": record.process,
            "thread": record.threadName,
        }
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            entry["exc"] = self.redact(record.exc_text)
        if record.stack_info:
            entry["stack"] = self.redact(record.stack_info)
        return json.dumps(entry, ensure_ascii=False)


def configure_logging(
    settings: Settings, level: int | str = logging.INFO, stream: IO[str] | None = None
) -> logging.Handler:
    """Send every log record of this process to one handler on the root logger (stderr unless
    `stream` is given): text, or JSON when `settings.log_json`; masked as the module says.
    Calling it again replaces the handler it installed before. Returns the handler."""
    redact = Redactor(secrets_of(settings))
    handler = logging.StreamHandler(stream if stream is not None else sys.stderr)
    handler.setFormatter(JsonFormatter(redact) if settings.log_json else TextFormatter(redact))
    handler.addFilter(RedactingFilter(redact))
    setattr(handler, _MARK, True)
    root = logging.getLogger()
    for old in [h for h in root.handlers if getattr(h, _MARK, False)]:
        root.removeHandler(old)
        old.close()
    root.addHandler(handler)
    root.setLevel(level.upper() if isinstance(level, str) else level)
    return handler


def leave_celery_logging_alone() -> None:
    """Celery configures logging itself (its own handlers, task loggers that do not propagate)
    unless something answers its `setup_logging` signal: answer it, so that every record goes
    through the handler `configure_logging` installed."""
    from celery.signals import setup_logging

    setup_logging.connect(_celery_setup_logging, weak=False)


def _celery_setup_logging(**_kwargs: Any) -> None:
    return None
