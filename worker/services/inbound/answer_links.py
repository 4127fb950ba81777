"""The installation's root secret and the keys derived from it.

(Check-in emails once carried signed answer links built here, with the message, item and value
readable in the URL; they now carry an opaque form link: services/outbound/form_links.py.)
"""

from __future__ import annotations

import secrets

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
