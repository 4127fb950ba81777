"""Signed one-click answer links for check-in emails.

The token carries the message id, the item, the value and an expiry, with an HMAC over them, so
the link can be answered without a login and cannot be altered to answer another check-in.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from datetime import datetime, timedelta

from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session, sessionmaker

from worker.config import Settings
from worker.store.db import session_scope
from worker.store.models import AppSecret


def signing_key(settings: Settings, sessions: sessionmaker[Session]) -> bytes:
    """The link key, derived from CHECKIN_SECRET_KEY under its own label (worker/keys.py).

    Development only (console backends, see Settings.is_development), without a secret key: a
    random root generated once per installation and kept in the database, so every process
    agrees. Anyone who can read that database (or a backup) could forge links, which is why a
    real deployment must set CHECKIN_SECRET_KEY (start-up refuses otherwise)."""
    from worker.keys import EMAIL_LINKS, derive

    return derive(root_secret(settings, sessions), EMAIL_LINKS)


def root_secret(settings: Settings, sessions: sessionmaker[Session]) -> bytes:
    """CHECKIN_SECRET_KEY, or (development) the installation's generated key in the database."""
    if settings.secret_key is not None:
        return settings.secret_key.get_secret_value().encode()
    with session_scope(sessions) as session:
        row = session.get(AppSecret, "link_key")
        if row is not None:
            return row.value.encode()
    candidate = secrets.token_urlsafe(48)
    with session_scope(sessions) as session:
        stmt = (
            postgresql.insert(AppSecret)
            if session.get_bind().dialect.name == "postgresql"
            else sqlite.insert(AppSecret)
        )
        session.execute(
            stmt.values(
                name="link_key", value=candidate, created_at=settings.now()
            ).on_conflict_do_nothing(index_elements=["name"])
        )
    with session_scope(sessions) as session:
        row = session.get(AppSecret, "link_key")
        assert row is not None
        return row.value.encode()


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def make_token(key: bytes, message_id: int, item: str, value: int, expires: datetime) -> str:
    payload = f"{message_id}.{item}.{value}.{int(expires.timestamp())}"
    mac = hmac.new(key, payload.encode(), hashlib.sha256).digest()[:16]
    return f"{_b64(payload.encode())}.{_b64(mac)}"


def read_token(key: bytes, token: str, now: datetime) -> tuple[int, str, int] | None:
    """(message_id, item, value) for a valid, unexpired token; None otherwise."""
    try:
        p64, m64 = token.split(".", 1)
        payload = base64.urlsafe_b64decode(p64 + "=" * (-len(p64) % 4))
        mac = base64.urlsafe_b64decode(m64 + "=" * (-len(m64) % 4))
        expected = hmac.new(key, payload, hashlib.sha256).digest()[:16]
        if not hmac.compare_digest(mac, expected):
            return None
        mid, item, value, exp = payload.decode().split(".")
        if now.timestamp() > int(exp):
            return None
        return int(mid), item, int(value)
    except (ValueError, UnicodeDecodeError):
        return None


def answer_url(
    settings: Settings,
    key: bytes,
    message_id: int,
    item: str,
    value: int,
    now: datetime,
    valid: timedelta,
) -> str:
    return f"{settings.public_url}/r/{make_token(key, message_id, item, value, now + valid)}"
