"""Signed one-click answer links for check-in emails.

The token carries the message id, the item, the value and an expiry, with an HMAC over them, so
the link can be answered without a login and cannot be altered to answer another check-in.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from datetime import datetime, timedelta

from worker.config import Settings


def signing_key(settings: Settings) -> bytes:
    if settings.secret_key is not None:
        return settings.secret_key.get_secret_value().encode()
    if settings.api_token is not None:
        return hashlib.sha256(b"links:" + settings.api_token.get_secret_value().encode()).digest()
    # Development fallback: stable for one database, useless to anyone who cannot read it.
    return hashlib.sha256(b"links:" + settings.database_url.encode()).digest()


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def make_token(
    settings: Settings, message_id: int, item: str, value: int, expires: datetime
) -> str:
    payload = f"{message_id}.{item}.{value}.{int(expires.timestamp())}"
    mac = hmac.new(signing_key(settings), payload.encode(), hashlib.sha256).digest()[:16]
    return f"{_b64(payload.encode())}.{_b64(mac)}"


def read_token(settings: Settings, token: str, now: datetime) -> tuple[int, str, int] | None:
    """(message_id, item, value) for a valid, unexpired token; None otherwise."""
    try:
        p64, m64 = token.split(".", 1)
        payload = base64.urlsafe_b64decode(p64 + "=" * (-len(p64) % 4))
        mac = base64.urlsafe_b64decode(m64 + "=" * (-len(m64) % 4))
        expected = hmac.new(signing_key(settings), payload, hashlib.sha256).digest()[:16]
        if not hmac.compare_digest(mac, expected):
            return None
        mid, item, value, exp = payload.decode().split(".")
        if now.timestamp() > int(exp):
            return None
        return int(mid), item, int(value)
    except (ValueError, UnicodeDecodeError):
        return None


def answer_url(
    settings: Settings, message_id: int, item: str, value: int, now: datetime, valid: timedelta
) -> str:
    return f"{settings.public_url}/r/{make_token(settings, message_id, item, value, now + valid)}"
