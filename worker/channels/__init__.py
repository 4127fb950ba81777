"""One small channel interface: an SMS channel and an email channel, one error type.

Implementations: `TwilioSms`, `SmtpEmail`, `ConsoleSms`/`ConsoleEmail` (development default).
Services receive channels already built (see `worker.channels.factory.build_channels`); nothing
here reads settings at import.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol, runtime_checkable


@dataclass(frozen=True)
class SendResult:
    """What the provider accepted: its id for the message and, for SMS, the segment count."""

    provider_id: str | None
    segments: int | None = None
    status: str | None = None


@dataclass(frozen=True)
class ProviderMessage:
    """One message as the provider lists it; used to reconcile rows whose outcome is unknown.
    `from_` and `messaging_service_sid`: the sender, as the provider reports it."""

    provider_id: str
    to: str
    body: str
    created_at: datetime | None
    status: str | None
    from_: str | None = None
    messaging_service_sid: str | None = None


class ChannelError(Exception):
    """A send that did not go through.

    `permanent`: retrying will not help (invalid number, rejected address, opted out at carrier).
    `code`: the provider's error code as a string (Twilio "21211", SMTP "550"), when there is one.
    `opted_out`: the carrier says the recipient has opted out (Twilio 21610): withdraw SMS consent.
    `retry_after`: seconds the provider asked us to wait, when it said so (HTTP 429).
    """

    def __init__(
        self,
        message: str,
        *,
        permanent: bool,
        code: str | None = None,
        opted_out: bool = False,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message)
        self.permanent = permanent
        self.code = code
        self.opted_out = opted_out
        self.retry_after = retry_after


class DeliveryUnknown(Exception):
    """The request may have reached the provider (a timeout after it left): never resend blindly.

    The row goes to `unknown` and is reconciled against the provider's message list.
    """


@runtime_checkable
class SmsChannel(Protocol):
    name: str
    #: True when `find_sent` can answer, so `unknown` rows can be reconciled.
    can_reconcile: bool

    def send_sms(
        self, to: str, body: str, *, status_callback: str | None = None, sender: str | None = None
    ) -> SendResult:
        """Send one SMS, from `sender` (an E.164 number or a Messaging Service SID) when given,
        else from the channel's own. Raises ChannelError or DeliveryUnknown."""
        ...

    def find_sent(self, to: str, since: datetime) -> list[ProviderMessage]:
        """Messages the provider has accepted to `to` created at or after `since`."""
        ...


@runtime_checkable
class EmailChannel(Protocol):
    name: str

    def send_email(
        self,
        to: str,
        subject: str,
        text: str,
        html: str | None,
        *,
        message_id: str,
        headers: Mapping[str, str] | None = None,
    ) -> SendResult:
        """Send one email with text and optional HTML alternatives, and any extra `headers`
        (List-Unsubscribe). Raises ChannelError."""
        ...


@dataclass
class Channels:
    """The channels a service uses, injected (tests pass their own)."""

    sms: SmsChannel
    email: EmailChannel
    extra: dict[str, object] = field(default_factory=dict)
