"""Two-factor sign-in: TOTP (RFC 6238: 6 digits, 30-second steps, SHA-1, as every
authenticator app reads an otpauth:// URI) and ten single-use recovery codes.

The secret is created with the account when 2FA applies (CHECKIN_REQUIRE_2FA and a clinician or
admin role), or at first sign-in; the user enrols by scanning the QR code (an inline SVG drawn
on the server, no script) and entering a first code. Recovery codes are shown once and stored
as SHA-256; each works once. A code is accepted one step either side of now (clock drift).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from datetime import datetime

import pyotp
import segno

from worker.config import Settings
from worker.store.models import User

ROLES_REQUIRING = ("clinician", "admin")
RECOVERY_CODES = 10
ISSUER = "checkin-worker"


def required(settings: Settings, user: User) -> bool:
    """Must this user give a second factor? Always once enrolled; before that, when the
    installation requires it for the user's role."""
    if user.totp_confirmed_at is not None:
        return True
    return settings.require_2fa and user.role in ROLES_REQUIRING


def ensure_secret(user: User) -> str:
    """The user's TOTP secret, created if there is none (the caller commits)."""
    if not user.totp_secret:
        user.totp_secret = pyotp.random_base32()
    return user.totp_secret


def otpauth_uri(user: User, issuer: str = ISSUER) -> str:
    return pyotp.TOTP(ensure_secret(user)).provisioning_uri(name=user.email, issuer_name=issuer)


def qr_svg(uri: str) -> str:
    """The URI as an inline SVG QR code (no XML declaration, no script, no style attribute)."""
    return str(segno.make(uri, error="m").svg_inline(scale=4, border=2, dark="#000", light="#fff"))


def _normalise(code: str) -> str:
    return "".join(ch for ch in code if ch.isalnum()).lower()


def check_code(user: User, code: str, now: datetime) -> bool:
    """A current TOTP code (one step of drift either way), never one already used: the step
    it belongs to is remembered (the caller commits)."""
    digits = _normalise(code)
    if not user.totp_secret or len(digits) != 6 or not digits.isdigit():
        return False
    totp = pyotp.TOTP(user.totp_secret)
    current = totp.timecode(now)
    for step in (current - 1, current, current + 1):
        if hmac.compare_digest(totp.generate_otp(step), digits):
            if user.totp_last_step is not None and step <= user.totp_last_step:
                return False  # replayed (or older than one already used)
            user.totp_last_step = step
            return True
    return False


def _hash(code: str) -> str:
    return hashlib.sha256(_normalise(code).encode()).hexdigest()


def new_recovery_codes(user: User) -> list[str]:
    """Ten fresh codes (the old ones stop working); returns the plaintext, shown once."""
    codes = [f"{secrets.token_hex(4)}-{secrets.token_hex(4)}" for _ in range(RECOVERY_CODES)]
    user.recovery_codes = [_hash(c) for c in codes]
    return codes


def use_recovery_code(user: User, code: str) -> bool:
    """True and the code spent, if it is one of the user's unused recovery codes."""
    if len(_normalise(code)) != 16:
        return False
    digest = _hash(code)
    remaining = list(user.recovery_codes or [])
    for stored in remaining:
        if hmac.compare_digest(stored, digest):
            remaining.remove(stored)
            user.recovery_codes = remaining
            return True
    return False


def reset(user: User) -> None:
    """Forget the second factor: a new secret, to be enrolled at the next sign-in."""
    user.totp_secret = pyotp.random_base32()
    user.totp_confirmed_at = None
    user.totp_last_step = None
    user.recovery_codes = None
