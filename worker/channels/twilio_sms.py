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

import email.utils
import logging
import threading
from datetime import UTC, datetime
from typing import Any

import requests
from twilio.base.exceptions import TwilioException, TwilioRestException
from twilio.http.http_client import TwilioHttpClient
from twilio.rest import Client
from urllib3.exceptions import ConnectTimeoutError, MaxRetryError, NewConnectionError
from urllib3.exceptions import SSLError as Urllib3SSLError

from worker.channels import ChannelError, DeliveryUnknown, ProviderMessage, SendResult

TWILIO_API_URL = "https://api.twilio.com"
_RECONCILE_LIMIT = 1000

# The SDK logs every request at INFO, query strings included: the To of a list call is a phone
# number. Its records go to this logger, which passes on warnings and errors only.
_sdk_logger = logging.getLogger("worker.channels.twilio_sms.sdk")
_sdk_logger.setLevel(logging.WARNING)


class _ApiUrlHttpClient(TwilioHttpClient):  # type: ignore[misc]
    """The SDK's own HTTP client, sending what it addresses to https://api.twilio.com to
    `api_url` instead (a local emulator, a proxy).

    The SDK has no base-URL setting (the hosts are hard-coded per domain); passing a custom
    `http_client` to `Client` is its documented extension point for changing requests
    (twilio-python advanced-examples/custom-http-client.md; Twilio support suggests exactly
    this for mock endpoints in twilio/twilio-python#521). Page URLs the SDK builds from
    `next_page_uri` go through here too, so paging works against the emulator.

    It also remembers the Retry-After of the last 429, which TwilioRestException drops. One
    instance serves one thread (see TwilioSms), so that attribute is never shared.
    """

    def __init__(self, api_url: str, *, timeout: float) -> None:
        super().__init__(pool_connections=True, timeout=timeout, logger=_sdk_logger)
        self.api_url = api_url.rstrip("/")
        self.last_retry_after: float | None = None

    def request(
        self,
        method: str,
        url: str,
        params: dict[str, object] | None = None,
        data: dict[str, object] | None = None,
        headers: dict[str, str] | None = None,
        auth: tuple[str, str] | None = None,
        timeout: float | None = None,
        allow_redirects: bool = False,
    ) -> Any:
        if self.api_url != TWILIO_API_URL and (
            url == TWILIO_API_URL or url.startswith(TWILIO_API_URL + "/")
        ):
            url = self.api_url + url[len(TWILIO_API_URL) :]
        self.last_retry_after = None
        response = super().request(
            method,
            url,
            params=params,
            data=data,
            headers=headers,
            auth=auth,
            timeout=timeout,
            allow_redirects=allow_redirects,
        )
        if response.status_code == 429:
            self.last_retry_after = _parse_retry_after(response.headers)
        return response


class TwilioSms:
    """SmsChannel over Twilio. Thread-safe: each thread gets its own SDK client and session.

    Why per thread: requests.Session is not documented as thread-safe (psf/requests#2766; its
    maintainers advise one Session per thread), and the 429 Retry-After is read from the HTTP
    client after the call, which only works if no other thread used it in between. A client is
    built once per thread per channel and reused, so connections are kept alive across sends.
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
        self._local = threading.local()
        self._lock = threading.Lock()
        self._http_clients: list[_ApiUrlHttpClient] = []

    def _client(self) -> tuple[Any, _ApiUrlHttpClient]:
        state: tuple[Any, _ApiUrlHttpClient] | None = getattr(self._local, "state", None)
        if state is None:
            http = _ApiUrlHttpClient(self.api_url, timeout=self.timeout)
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
            with self._lock:
                self._http_clients.append(http)
        return state

    def close(self) -> None:
        """Close every thread's pooled connections (the channel stays usable)."""
        with self._lock:
            clients, self._http_clients = self._http_clients, []
        for http in clients:
            if http.session is not None:
                http.session.close()
        self._local = threading.local()

    def send_sms(self, to: str, body: str, *, status_callback: str | None = None) -> SendResult:
        """Send one SMS. Raises ChannelError (permanent or not) or DeliveryUnknown."""
        client, http = self._client()
        kwargs: dict[str, Any] = {"to": to, "body": body}
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
        except requests.RequestException as exc:
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
                    )
                )
        except TwilioRestException as exc:
            raise ChannelError(
                f"Twilio: listing messages failed (HTTP {exc.status}, code {exc.code})",
                permanent=False,
                code=str(exc.code) if exc.code is not None else None,
            ) from None
        except (TwilioException, requests.RequestException, ValueError):
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


def _transport_error(exc: requests.RequestException, timeout: float) -> Exception:
    """Transient when the request certainly never reached Twilio, else DeliveryUnknown."""
    if isinstance(exc, requests.ConnectTimeout | requests.exceptions.SSLError):
        return ChannelError("Twilio: could not connect (timeout or TLS)", permanent=False)
    if isinstance(exc, requests.ReadTimeout):
        return DeliveryUnknown(
            f"Twilio: no answer within {timeout:g} s after the request was sent; "
            "it may have been accepted"
        )
    if isinstance(exc, requests.ConnectionError):
        reason = exc.args[0] if exc.args else None
        if isinstance(reason, MaxRetryError):
            reason = reason.reason
        if isinstance(reason, NewConnectionError | ConnectTimeoutError | Urllib3SSLError):
            return ChannelError("Twilio: could not connect", permanent=False)
    # The connection broke after it was established: the request may have been received.
    return DeliveryUnknown("Twilio: the connection failed mid-request; it may have been accepted")


def _parse_retry_after(headers: Any) -> float | None:
    value = headers.get("Retry-After") if headers is not None else None
    if not value:
        return None
    value = str(value).strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max((when - datetime.now(UTC)).total_seconds(), 0.0)


def _int_or_none(value: object) -> int | None:
    try:
        return int(str(value))
    except (TypeError, ValueError):
        return None
