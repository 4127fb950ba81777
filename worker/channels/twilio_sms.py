"""SMS through Twilio's Messages API with the official SDK.

Errors are classified once, here (STYLE.md 4, CLINICAL.md):
- 21211 (invalid number), 21614 (not a mobile number) and any other 4xx: permanent;
- 21610 (the recipient opted out at the carrier): permanent, `opted_out=True`;
- 429: transient, with `retry_after` from the Retry-After header; 5xx: transient;
- the request never left (connection refused, connect timeout, TLS handshake): transient;
- the request left and no answer came (read timeout, connection dropped mid-request):
  `DeliveryUnknown`, because Twilio takes no idempotency key and may have accepted it.

Exception messages never carry the phone number or the body, and are raised `from None`:
Twilio's own error text and the request URL of a list call both contain the number.
"""

from __future__ import annotations

import threading
from datetime import UTC, datetime
from typing import Any

from twilio.base.exceptions import TwilioException, TwilioRestException
from twilio.rest import Client
from urllib3.exceptions import (
    ConnectTimeoutError,
    HTTPError,
    LocationValueError,
    ProxyError,
    ReadTimeoutError,
    SSLError,
)

from worker.channels import ChannelError, DeliveryUnknown, ProviderMessage, SendResult
from worker.channels.twilio_http import TWILIO_API_URL, ApiUrlHttpClient, Transport

_RECONCILE_LIMIT = 1000
#: Connections kept alive per channel by default: the send threads of a worker
#: (CHECKIN_SEND_CONCURRENCY's default) plus a few task threads.
DEFAULT_POOL_SIZE = 36


class TwilioSms:
    """SmsChannel over Twilio. Thread-safe: the threads share one keep-alive connection pool
    (sized `pool_size`, one connection per concurrent send), and each thread has its own SDK
    client, built once and reused.

    Why a client per thread: the SDK's Client is not documented as thread-safe, and the 429
    Retry-After is read from the HTTP client after the call, which only works if no other
    thread used it in between.
    """

    name = "twilio"
    can_reconcile = True

    def __init__(
        self,
        account_sid: str,
        auth_token: str,
        *,
        from_number: str | None,
        messaging_service_sid: str | None,
        api_url: str = TWILIO_API_URL,
        timeout: float = 10.0,
        pool_size: int = DEFAULT_POOL_SIZE,
    ) -> None:
        if not (from_number or messaging_service_sid):
            raise ValueError("TwilioSms needs from_number or messaging_service_sid")
        if timeout <= 0:
            raise ValueError("timeout must be positive")
        self.account_sid = account_sid
        self._auth_token = auth_token
        self.from_number = from_number
        self.messaging_service_sid = messaging_service_sid
        self.api_url = api_url.rstrip("/")
        self.timeout = timeout
        self._transport = Transport(self.api_url, pool_size=pool_size)
        self._local = threading.local()

    def _client(self) -> tuple[Any, ApiUrlHttpClient]:
        state: tuple[Any, ApiUrlHttpClient] | None = getattr(self._local, "state", None)
        if state is None:
            http = ApiUrlHttpClient(self._transport, timeout=self.timeout)
            # An explicit environment: the SDK would otherwise read TWILIO_REGION/TWILIO_EDGE
            # from os.environ and rewrite the host (Settings is the only reader of the env).
            client = Client(
                self.account_sid,
                self._auth_token,
                http_client=http,
                environment={"TWILIO_REGION": "", "TWILIO_EDGE": ""},
            )
            state = (client, http)
            self._local.state = state
        return state

    def close(self) -> None:
        """Close the pooled connections (the channel stays usable: it reconnects)."""
        self._transport.close()

    def send_sms(
        self, to: str, body: str, *, status_callback: str | None = None, sender: str | None = None
    ) -> SendResult:
        """Send one SMS, from `sender` when given (an E.164 number or a Messaging Service SID:
        on-call pages from CHECKIN_ONCALL_FROM). Raises ChannelError (permanent or not) or
        DeliveryUnknown."""
        client, http = self._client()
        kwargs: dict[str, Any] = {"to": to, "body": body}
        if sender is not None:
            kwargs["messaging_service_sid" if sender.startswith("MG") else "from_"] = sender
        else:
            # With both, Twilio sends from the number and applies the service's features
            # (opt-out handling, its status callback); with only a service, it picks the sender.
            if self.from_number:
                kwargs["from_"] = self.from_number
            if self.messaging_service_sid:
                kwargs["messaging_service_sid"] = self.messaging_service_sid
        if status_callback:
            kwargs["status_callback"] = status_callback
        try:
            message = client.messages.create(**kwargs)
        except TwilioRestException as exc:
            raise _classify(exc.status, exc.code, http.last_retry_after) from None
        except TwilioException as exc:  # RFC 9457 errors carry status and code too
            status = getattr(exc, "status", None)
            if isinstance(status, int):
                raise _classify(status, getattr(exc, "code", None), None) from None
            raise ChannelError("Twilio: unreadable response", permanent=False) from None
        except HTTPError as exc:  # urllib3: no answer came (see _transport_error)
            raise _transport_error(exc, self.timeout) from None
        segments = _int_or_none(message.num_segments)
        return SendResult(
            provider_id=str(message.sid),
            segments=segments if segments else None,  # 0 via a Messaging Service: not known yet
            status=str(message.status) if message.status else None,
        )

    def find_sent(self, to: str, since: datetime) -> list[ProviderMessage]:
        """Messages Twilio lists to `to` created at or after `since` (to the second: Twilio's
        timestamps have no fraction). Raises ChannelError(permanent=False) when Twilio cannot
        be asked; listing is read-only, so a retry is always safe.

        No DateSent filter: Twilio leaves date_sent empty while a message is still queued, and a
        message missed here would be sent again. The list is newest first, so the most recent
        messages to this one recipient are enough; creation times are compared here.
        """
        client, _ = self._client()
        since_utc = since.astimezone(UTC).replace(microsecond=0)
        found: list[ProviderMessage] = []
        try:
            for message in client.messages.stream(to=to, page_size=50, limit=_RECONCILE_LIMIT):
                created = message.date_created
                if isinstance(created, datetime) and created < since_utc:
                    continue
                found.append(
                    ProviderMessage(
                        provider_id=str(message.sid),
                        to=str(message.to),
                        body=str(message.body or ""),
                        created_at=created if isinstance(created, datetime) else None,
                        status=str(message.status) if message.status else None,
                        from_=str(message.from_) if message.from_ else None,
                        messaging_service_sid=(
                            str(message.messaging_service_sid)
                            if message.messaging_service_sid
                            else None
                        ),
                    )
                )
        except TwilioRestException as exc:
            raise ChannelError(
                f"Twilio: listing messages failed (HTTP {exc.status}, code {exc.code})",
                permanent=False,
                code=str(exc.code) if exc.code is not None else None,
            ) from None
        except (TwilioException, HTTPError, ValueError):
            raise ChannelError("Twilio: listing messages failed", permanent=False) from None
        return found


def _classify(status: int, code: object, retry_after: float | None) -> ChannelError:
    code_str = str(code) if code is not None else None
    where = f"HTTP {status}, code {code_str}"
    if code_str == "21610":
        return ChannelError(
            f"Twilio: recipient has unsubscribed at the carrier ({where})",
            permanent=True,
            code=code_str,
            opted_out=True,
        )
    if code_str in ("21211", "21614"):
        return ChannelError(
            f"Twilio: the number cannot receive SMS ({where})", permanent=True, code=code_str
        )
    if status == 429:
        return ChannelError(
            f"Twilio: rate limited ({where})",
            permanent=False,
            code=code_str,
            retry_after=retry_after,
        )
    if status >= 500:
        return ChannelError(f"Twilio: server error ({where})", permanent=False, code=code_str)
    if 400 <= status < 500:
        return ChannelError(f"Twilio: request refused ({where})", permanent=True, code=code_str)
    return ChannelError(f"Twilio: unexpected answer ({where})", permanent=False, code=code_str)


def _transport_error(exc: HTTPError, timeout: float) -> Exception:
    """Transient when the request certainly never reached Twilio, else DeliveryUnknown.

    urllib3 is called with retries=False, so its own exception arrives here, not MaxRetryError.
    """
    # Connection refused, DNS, connect timeout (NewConnectionError is a ConnectTimeoutError),
    # the TLS handshake, or the proxy in front of Twilio: nothing was sent.
    if isinstance(exc, ConnectTimeoutError | SSLError | ProxyError):
        return ChannelError("Twilio: could not connect", permanent=False)
    if isinstance(exc, LocationValueError):  # TWILIO_API_URL unusable: nothing was sent
        return ChannelError("Twilio: the API URL cannot be used", permanent=False)
    if isinstance(exc, ReadTimeoutError):
        return DeliveryUnknown(
            f"Twilio: no answer within {timeout:g} s after the request was sent; "
            "it may have been accepted"
        )
    # The connection broke after it was established: the request may have been received.
    return DeliveryUnknown("Twilio: the connection failed mid-request; it may have been accepted")


def _int_or_none(value: object) -> int | None:
    try:
        return int(str(value))
    except (TypeError, ValueError):
        return None
