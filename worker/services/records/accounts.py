"""Staff accounts: argon2-hashed passwords, roles, and per-user API tokens.

Roles (enforced by the dashboard and the API, documented in docs/runbook.md):
- `clinician`: everything about patients, answers, the whole follow-up queue.
- `frontdesk`: patients' contact details, consent, appointments and their reminders, and only
  the follow-ups about appointments (confirm/reschedule/cancel requests); never answers, scores,
  conversations, schedules or protocols.
- `admin`: everything a clinician can do (account management is the command line's).
- The operations page (no patient data) is for clinicians and admins.

API tokens are random 32-byte URL-safe strings; only their SHA-256 (hex) is stored, so a leaked
database does not leak working tokens. The plaintext is shown once, when it is issued.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import secrets
from datetime import datetime
from functools import lru_cache

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from worker.domain.contact import ContactError, normalize_email
from worker.services.errors import InvalidInput, NotFound
from worker.services.input_limits import NAME_MAX, check_text
from worker.store.models import ApiToken, User, WebSession

ROLES = ("clinician", "frontdesk", "admin")
MIN_PASSWORD_LENGTH = 10
TOKEN_PREFIX = "ck_"  # noqa: S105 (a label that makes leaked tokens recognisable)

# Follow-up reasons the front desk sees and may act on; everything else is clinical.
FRONTDESK_REASONS = frozenset(
    {"confirm_request", "reschedule_request", "cancel_request", "late_arrival"}
)


@lru_cache(maxsize=1)
def _hasher() -> PasswordHasher:
    return PasswordHasher()


@lru_cache(maxsize=1)
def _dummy_hash() -> str:
    # Verified against for unknown emails so that a miss costs the same as a wrong password.
    return _hasher().hash(secrets.token_urlsafe(16))


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def normalize_user_email(raw: str) -> str:
    try:
        return normalize_email(raw).lower()
    except ContactError as exc:
        raise InvalidInput(str(exc)) from None


def can_see_clinical(user: User) -> bool:
    """Answers, scores, conversations and clinical follow-ups."""
    return user.role in ("clinician", "admin")


def can_see_followup(user: User, reason: str) -> bool:
    return can_see_clinical(user) or reason in FRONTDESK_REASONS


def can_see_operations(user: User) -> bool:
    return user.role in ("clinician", "admin")


def create_user(
    session: Session, *, name: str, email: str, role: str, password: str, now: datetime
) -> User:
    """Add an account (flushed, not committed). Raises InvalidInput on a bad name, email, role,
    a password shorter than MIN_PASSWORD_LENGTH, or an email already in use; nothing is written
    then."""
    name = check_text(name, "name", NAME_MAX).strip()
    if not name:
        raise InvalidInput("name is empty")
    if len(name) > 200:
        raise InvalidInput("name is longer than 200 characters")
    address = normalize_user_email(email)
    if role not in ROLES:
        raise InvalidInput(f"role must be one of {', '.join(ROLES)}, got {role!r}")
    if len(password) < MIN_PASSWORD_LENGTH:
        raise InvalidInput(f"password must be at least {MIN_PASSWORD_LENGTH} characters")
    if len(password) > 1024:
        raise InvalidInput("password is longer than 1024 characters")
    if session.scalar(select(User.id).where(User.email == address)) is not None:
        raise InvalidInput(f"a user with email {address} already exists")
    user = User(
        name=name,
        email=address,
        role=role,
        password_hash=_hasher().hash(password),
        created_at=now,
        disabled_at=None,
    )
    session.add(user)
    session.flush()
    return user


def get_user(session: Session, user_id: int) -> User:
    user = session.get(User, user_id)
    if user is None:
        raise NotFound(f"no user with id {user_id}")
    return user


def list_users(session: Session) -> list[User]:
    return list(session.scalars(select(User).order_by(User.id)))


def authenticate(session: Session, email: str, password: str) -> User | None:
    """The active user with this email and password, or None. An unknown or malformed email
    costs one argon2 verification too, so timing does not tell which emails exist. A hash made
    with older parameters is upgraded in place (flushed; the caller commits)."""
    try:
        address = normalize_user_email(email)
    except InvalidInput:
        address = None
    user = (
        session.scalars(select(User).where(User.email == address)).first()
        if address is not None
        else None
    )
    hasher = _hasher()
    if user is None:
        with contextlib.suppress(VerificationError):
            hasher.verify(_dummy_hash(), password)
        return None
    try:
        hasher.verify(user.password_hash, password)
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return None
    if user.disabled_at is not None:
        return None
    if hasher.check_needs_rehash(user.password_hash):
        user.password_hash = hasher.hash(password)
        session.flush()
    return user


def find_user(session: Session, email: str) -> User | None:
    """The account with this email (any state), or None; no password is checked."""
    try:
        address = normalize_user_email(email)
    except InvalidInput:
        return None
    return session.scalars(select(User).where(User.email == address)).first()


def check_password(session: Session, user: User | None, password: str) -> bool:
    """Is `password` the user's? An unknown user costs one argon2 verification too, so timing
    does not tell which emails exist. At most throttle.HASH_SLOTS hashes run at once per
    process (64 MiB each); raises throttle.Busy when none frees up in time. A hash made with
    older parameters is upgraded in place (flushed; the caller commits)."""
    from worker.services.records.signin_throttle import hash_slot

    hasher = _hasher()
    with hash_slot():
        if user is None:
            with contextlib.suppress(VerificationError):
                hasher.verify(_dummy_hash(), password)
            return False
        try:
            hasher.verify(user.password_hash, password)
        except (VerifyMismatchError, VerificationError, InvalidHashError):
            return False
        if hasher.check_needs_rehash(user.password_hash):
            user.password_hash = hasher.hash(password)
            session.flush()
    return True


def set_password(
    session: Session,
    user_id: int,
    password: str,
    *,
    now: datetime,
    keep_session_id: int | None = None,
) -> User:
    """A new password; every dashboard session of the user ends (but `keep_session_id`, the
    one the user changed it from)."""
    if len(password) < MIN_PASSWORD_LENGTH:
        raise InvalidInput(f"password must be at least {MIN_PASSWORD_LENGTH} characters")
    if len(password) > 1024:
        raise InvalidInput("password is longer than 1024 characters")
    user = get_user(session, user_id)
    user.password_hash = _hasher().hash(password)
    stmt = update(WebSession).where(WebSession.user_id == user_id, WebSession.revoked_at.is_(None))
    if keep_session_id is not None:
        stmt = stmt.where(WebSession.id != keep_session_id)
    session.execute(stmt.values(revoked_at=now))
    session.flush()
    return user


def disable_user(session: Session, user_id: int, *, now: datetime) -> User:
    """Disable an account: it can no longer sign in, its dashboard sessions end and its API
    tokens stop working."""
    user = get_user(session, user_id)
    if user.disabled_at is None:
        user.disabled_at = now
    end_web_sessions(session, user_id, now=now)
    session.flush()
    return user


def end_web_sessions(session: Session, user_id: int, *, now: datetime) -> int:
    """Sign a user out of the dashboard everywhere. Returns the number of sessions ended."""
    result = session.execute(
        update(WebSession)
        .where(WebSession.user_id == user_id, WebSession.revoked_at.is_(None))
        .values(revoked_at=now)
    )
    return int(getattr(result, "rowcount", 0) or 0)


def issue_api_token(session: Session, user_id: int, *, name: str, now: datetime) -> str:
    """Create a token for the user and return its plaintext (the only time it exists outside
    the caller); only its SHA-256 is stored. Raises NotFound, or InvalidInput for an empty
    label or a disabled user."""
    label = name.strip()
    if not label:
        raise InvalidInput("the token's name is missing: give it a label", field="name")
    if len(label) > 100:
        raise InvalidInput("token name is longer than 100 characters")
    user = get_user(session, user_id)
    if user.disabled_at is not None:
        raise InvalidInput(f"user {user_id} is disabled")
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    session.add(
        ApiToken(
            user_id=user.id,
            token_hash=hash_token(token),
            name=label,
            created_at=now,
            last_used_at=None,
            revoked_at=None,
        )
    )
    session.flush()
    return token


def token_user(session: Session, token: str, *, now: datetime) -> User | None:
    """The active user a token belongs to, or None (unknown, revoked, or user disabled).
    Records `last_used_at` (flushed; the caller commits)."""
    found = token_lookup(session, token, now=now)
    return found[0] if found is not None else None


def token_lookup(session: Session, token: str, *, now: datetime) -> tuple[User, ApiToken] | None:
    """(user, token row) for a live personal token, or None; records `last_used_at`."""
    if not token:
        return None
    digest = hash_token(token)
    row = session.scalars(select(ApiToken).where(ApiToken.token_hash == digest)).first()
    # The lookup is by hash (an index), so timing reveals nothing about the plaintext; the
    # compare below only guards against a collation surprise in the database.
    if row is None or not hmac.compare_digest(row.token_hash, digest):
        return None
    if row.revoked_at is not None:
        return None
    user = session.get(User, row.user_id)
    if user is None or user.disabled_at is not None:
        return None
    row.last_used_at = now
    session.flush()
    return user, row


def revoke_api_token(session: Session, token_id: int, *, now: datetime) -> ApiToken:
    row = session.get(ApiToken, token_id)
    if row is None:
        raise NotFound(f"no API token with id {token_id}")
    if row.revoked_at is None:
        row.revoked_at = now
    session.flush()
    return row


def list_api_tokens(session: Session, user_id: int | None = None) -> list[ApiToken]:
    stmt = select(ApiToken).order_by(ApiToken.id)
    if user_id is not None:
        stmt = stmt.where(ApiToken.user_id == user_id)
    return list(session.scalars(stmt))
