"""The installation's root secret (CHECKIN_SECRET_KEY) and the keys derived from it, one per
purpose.

HKDF-SHA256 (RFC 5869): one extract with a fixed salt, then an expand under a label per use, so
a key recovered for one purpose (say, from a leaked email-answer link) tells nothing about
another (the dashboard's session cookies), and a token of one kind never verifies as the other.
`derive` is pure; `root_secret` reads the settings, or (development) the database.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from typing import Final

from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session, sessionmaker

from worker.config import Settings
from worker.store.db import session_scope
from worker.store.models import AppSecret

SALT: Final = b"checkin-worker key derivation v1"
EMAIL_LINKS: Final = "email answer links"
SESSIONS: Final = "dashboard sessions"


def derive(root: bytes, purpose: str, length: int = 32) -> bytes:
    """The `length`-byte key for `purpose` from the root secret (HKDF extract, then expand)."""
    prk = hmac.new(SALT, root, hashlib.sha256).digest()
    out, block, counter = b"", b"", 1
    while len(out) < length:
        block = hmac.new(prk, block + purpose.encode() + bytes([counter]), hashlib.sha256).digest()
        out += block
        counter += 1
    return out[:length]


def signing_key(settings: Settings, sessions: sessionmaker[Session]) -> bytes:
    """The link key, derived from CHECKIN_SECRET_KEY under its own label.

    Development only (console backends, see Settings.is_development), without a secret key: a
    random root generated once per installation and kept in the database, so every process
    agrees. Anyone who can read that database (or a backup) could forge links, which is why a
    real deployment must set CHECKIN_SECRET_KEY (start-up refuses otherwise)."""
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
