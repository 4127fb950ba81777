"""Dashboard sessions and CSRF protection.

The cookie is signed (HMAC-SHA256): `session id | issued-at | csrf token`, base64url, then the
MAC. The key is derived from CHECKIN_SECRET_KEY, or else the installation's generated link key
(kept in the database), under a label of its own, so a one-click answer token can never pass as
a session cookie or the reverse.

- A signed-in session is also a `web_sessions` row (only the SHA-256 of its random id is
  stored): signing out, a new password or a disabled account ends it on the server, so a copied
  cookie stops working too. It expires `MAX_AGE` after sign-in (absolute timeout) and after
  CHECKIN_SESSION_IDLE_MINUTES without a request (idle timeout, HIPAA's automatic logoff).
- Between the password and the second factor the session is `pending` (stage `totp` or
  `enrol`): it shows no page but the second-factor one and lasts PENDING_MAX_AGE; once the code
  is right a new session id replaces it.
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
PENDING_MAX_AGE = timedelta(minutes=10)
# last_seen_at is written at most this often (one UPDATE per request would be wasteful).
TOUCH_EVERY = timedelta(seconds=30)
CSRF_FIELD = "csrf"
CSRF_HEADER = "X-CSRF-Token"


@dataclass(frozen=True)
class SessionData:
    sid: str | None  # None: not signed in
    issued: int  # Unix seconds
    csrf: str

    @property
    def signed_in(self) -> bool:
        return self.sid is not None


def session_key(rt: Runtime) -> bytes:
    from worker.keys import SESSIONS, derive, root_secret

    return derive(root_secret(rt.settings, rt.sessions), SESSIONS)


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


def sign_in(
    db: Session,
    user: User,
    now: datetime,
    *,
    stage: str = "full",
    address: str | None = None,
    user_agent: str | None = None,
) -> SessionData:
    """Start a server-side session for `user` (added to `db`'s transaction). `stage` is `full`,
    or `totp`/`enrol` while the second factor is outstanding."""
    sid = secrets.token_urlsafe(32)
    db.add(
        WebSession(
            token_hash=_hash(sid),
            user_id=user.id,
            created_at=now,
            expires_at=now + (MAX_AGE if stage == "full" else PENDING_MAX_AGE),
            revoked_at=None,
            last_seen_at=now,
            stage=stage,
            address=(address or "")[:64] or None,
            user_agent=(user_agent or "")[:200] or None,
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


def _row(db: Session, data: SessionData) -> WebSession | None:
    if data.sid is None:
        return None
    return db.scalars(select(WebSession).where(WebSession.token_hash == _hash(data.sid))).first()


def session_user(
    db: Session, data: SessionData, now: datetime, idle: timedelta | None = None
) -> User | None:
    """The active user of a live, fully signed-in session, or None. With `idle`, a session
    unused for longer has ended (it is revoked); a live one is marked as seen now."""
    row = _row(db, data)
    if row is None or row.revoked_at is not None or row.expires_at <= now:
        return None
    if row.stage != "full":
        return None
    if idle is not None:
        seen = row.last_seen_at or row.created_at
        if now - seen > idle:
            row.revoked_at = now
            return None
        if now - seen >= TOUCH_EVERY:
            row.last_seen_at = now
    user = db.get(User, row.user_id)
    if user is None or user.disabled_at is not None:
        return None
    return user


def pending_user(db: Session, data: SessionData, now: datetime) -> tuple[WebSession, User] | None:
    """(session row, user) of a session waiting for its second factor, or None."""
    row = _row(db, data)
    if row is None or row.revoked_at is not None or row.expires_at <= now:
        return None
    if row.stage not in ("totp", "enrol"):
        return None
    user = db.get(User, row.user_id)
    if user is None or user.disabled_at is not None:
        return None
    return row, user


def complete(db: Session, row: WebSession, user: User, now: datetime) -> SessionData:
    """The second factor is done: the pending session ends and a full one (new id) starts."""
    row.revoked_at = now
    return sign_in(db, user, now, address=row.address, user_agent=row.user_agent)


def current_session_id(db: Session, data: SessionData) -> int | None:
    row = _row(db, data)
    return row.id if row is not None else None


def live_sessions(db: Session, user_id: int, now: datetime, idle: timedelta) -> list[WebSession]:
    """The user's sessions that still work, newest first."""
    rows = db.scalars(
        select(WebSession)
        .where(
            WebSession.user_id == user_id,
            WebSession.revoked_at.is_(None),
            WebSession.expires_at > now,
            WebSession.stage == "full",
        )
        .order_by(WebSession.id.desc())
    )
    return [r for r in rows if now - (r.last_seen_at or r.created_at) <= idle]


def revoke_session(db: Session, user_id: int, session_id: int, now: datetime) -> bool:
    """End one of the user's own sessions. False if it is not theirs or already ended."""
    result = db.execute(
        update(WebSession)
        .where(
            WebSession.id == session_id,
            WebSession.user_id == user_id,
            WebSession.revoked_at.is_(None),
        )
        .values(revoked_at=now)
    )
    return bool(getattr(result, "rowcount", 0))


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
