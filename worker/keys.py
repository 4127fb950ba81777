"""Keys derived from CHECKIN_SECRET_KEY, one per purpose.

HKDF-SHA256 (RFC 5869): one extract with a fixed salt, then an expand under a label per use, so
a key recovered for one purpose (say, from a leaked email-answer link) tells nothing about
another (the dashboard's session cookies), and a token of one kind never verifies as the other.
"""

from __future__ import annotations

import hashlib
import hmac
from typing import Final

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
