"""Dashboard sessions and CSRF protection.

The cookie is signed (HMAC-SHA256): `session id | issued-at | csrf token`, base64url, then the
MAC. The key is derived from CHECKIN_SECRET_KEY, or else the installation's generated link key
(kept in the database), under a label of its own, so a one-click answer token can never pass as
a session cookie or the reverse.

- A signed-in session is also a `web_sessions` row (only the SHA-256 of its random id is
  stored): signing out, a new password or a disabled account ends it on the server, so a copied
  cookie stops working too. It expires `MAX_AGE` after sign-in.
- The cookie is HttpOnly, SameSite=Lax, Path=/, and Secure when CHECKIN_PUBLIC_URL is https.
- Every visitor, signed in or not, has a random CSRF token in the cookie, so the sign-in form is
  protected too. Every POST must carry it (form field `csrf` or header `X-CSRF-Token`), and a
  browser's Origin header, when sent, must be this site. Signing in issues a fresh session with
  a fresh token (no session fixation).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select, update
from sqlalchemy.orm import Session
from starlette.requests import Request
from starlette.responses import Response

from worker.services.runtime import Runtime
from worker.store.models import User, WebSession

COOKIE = "checkin_session"
MAX_AGE = timedelta(hours=12)
CSRF_FIELD = "csrf"
CSRF_HEADER = "X-CSRF-Token"
_LABEL = b"checkin dashboard session v1"


@dataclass(frozen=True)
class SessionData:
    sid: str | None  # None: not signed in
    issued: int  # Unix seconds
    csrf: str

    @property
    def signed_in(self) -> bool:
        return self.sid is not None


def session_key(rt: Runtime) -> bytes:
    base = (
        rt.settings.secret_key.get_secret_value().encode()
        if rt.settings.secret_key is not None
        else rt.link_key
    )
    return hmac.new(base, _LABEL, hashlib.sha256).digest()


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _hash(sid: str) -> str:
    return hashlib.sha256(sid.encode()).hexdigest()


class SessionCodec:
    def __init__(self, key: bytes, max_age: timedelta = MAX_AGE) -> None:
        self._key = key
        self.max_age = max_age

    def _mac(self, payload: bytes) -> bytes:
        return hmac.new(self._key, payload, hashlib.sha256).digest()

    def dumps(self, data: SessionData) -> str:
        payload = f"{data.sid or ''}|{data.issued}|{data.csrf}".encode()
        return f"{_b64(payload)}.{_b64(self._mac(payload))}"

    def loads(self, value: str, now: datetime) -> SessionData | None:
        """The session in a cookie value, or None if it is forged, malformed or expired."""
        try:
            p64, m64 = value.split(".", 1)
            payload = _unb64(p64)
            if not hmac.compare_digest(_unb64(m64), self._mac(payload)):
                return None
            sid, issued, csrf = payload.decode().split("|")
            data = SessionData(sid or None, int(issued), csrf)
        except (ValueError, UnicodeDecodeError):
            return None
        age = now.timestamp() - data.issued
        if age < -300 or age > self.max_age.total_seconds() or len(data.csrf) < 16:
            return None
        return data


def anonymous(now: datetime) -> SessionData:
    return SessionData(sid=None, issued=int(now.timestamp()), csrf=secrets.token_urlsafe(24))


def sign_in(db: Session, user: User, now: datetime) -> SessionData:
    """Start a server-side session for `user` (added to `db`'s transaction)."""
    sid = secrets.token_urlsafe(32)
    db.add(
        WebSession(
            token_hash=_hash(sid),
            user_id=user.id,
            created_at=now,
            expires_at=now + MAX_AGE,
            revoked_at=None,
        )
    )
    return SessionData(sid=sid, issued=int(now.timestamp()), csrf=secrets.token_urlsafe(24))


def sign_out(db: Session, data: SessionData, now: datetime) -> None:
    if data.sid is not None:
        db.execute(
            update(WebSession)
            .where(WebSession.token_hash == _hash(data.sid), WebSession.revoked_at.is_(None))
            .values(revoked_at=now)
        )


def session_user(db: Session, data: SessionData, now: datetime) -> User | None:
    """The active user of a live session, or None."""
    if data.sid is None:
        return None
    row = db.scalars(select(WebSession).where(WebSession.token_hash == _hash(data.sid))).first()
    if row is None or row.revoked_at is not None or row.expires_at <= now:
        return None
    user = db.get(User, row.user_id)
    if user is None or user.disabled_at is not None:
        return None
    return user


class Sessions:
    """Reads the session cookie of a request (a new anonymous one if it is missing or bad) and
    writes one onto a response."""

    def __init__(self, rt: Runtime) -> None:
        self.codec = SessionCodec(session_key(rt))
        self.secure = rt.settings.public_url.startswith("https://")

    def read(self, request: Request, now: datetime) -> tuple[SessionData, bool]:
        """(session, is_new)."""
        raw = request.cookies.get(COOKIE)
        data = self.codec.loads(raw, now) if raw else None
        if data is None:
            return anonymous(now), True
        return data, False

    def write(self, response: Response, data: SessionData) -> None:
        response.set_cookie(
            COOKIE,
            self.codec.dumps(data),
            max_age=int(self.codec.max_age.total_seconds()),
            path="/",
            httponly=True,
            samesite="lax",
            secure=self.secure,
        )


def csrf_ok(session: SessionData, submitted: str | None) -> bool:
    return bool(submitted) and hmac.compare_digest(str(submitted).encode(), session.csrf.encode())


def same_origin(request: Request, public_url: str) -> bool:
    """A browser's POST names its origin; one from another site is refused even with a valid
    token. Requests without an Origin header (older browsers, scripts) rely on the token."""
    origin = request.headers.get("origin")
    if origin is None:
        return True
    host = request.headers.get("host", "")
    allowed = {public_url.rstrip("/"), f"http://{host}", f"https://{host}"}
    return origin.rstrip("/") in allowed
