"""Local stand-ins for outside services, for tests, benchmarks and development.

`TwilioEmulator` speaks Twilio's Messages API over real HTTP on loopback; run it on its own with
`python -m checkin_emulator`. Nothing here is imported by the running system.
"""

from __future__ import annotations

from checkin_emulator.twilio import (
    DEFAULT_ACCOUNT_SID,
    DEFAULT_AUTH_TOKEN,
    DEFAULT_NUMBER,
    EmulatorConfig,
    TwilioEmulator,
    WebhookResponse,
    count_segments,
    sms_encoding,
)

__all__ = [
    "DEFAULT_ACCOUNT_SID",
    "DEFAULT_AUTH_TOKEN",
    "DEFAULT_NUMBER",
    "EmulatorConfig",
    "TwilioEmulator",
    "WebhookResponse",
    "count_segments",
    "sms_encoding",
]
