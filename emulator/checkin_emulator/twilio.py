"""A small Twilio REST emulator: a real HTTP server on loopback that speaks the Messages API.

The real `twilio` SDK is pointed at it (`TWILIO_API_URL`), so tests and benchmarks exercise the
same code path as production: form-encoded requests, HTTP Basic auth, Twilio's JSON shapes for
messages, pages and errors, and webhooks signed with `X-Twilio-Signature`.

What it speaks:
- `POST /2010-04-01/Accounts/{AccountSid}/Messages.json` (To, From or MessagingServiceSid, Body,
  StatusCallback) → 201 with a Message resource, or Twilio's error JSON
  `{"code", "message", "more_info", "status"}`.
- `GET  .../Messages.json` with To, From, DateSent, DateSent<, DateSent> (compared by UTC date, as
  Twilio does), PageSize, Page and PageToken; newest first; `next_page_uri` as the SDK follows it.
  `list_ignores_to` makes it ignore the `To` filter (a faulty list, for reconciliation tests).
- `GET  .../Messages/{Sid}.json`.

Emulator control (no auth; it listens on loopback), for other processes to drive it:
- `POST /_emulator/config` (JSON, merged into the current config; see `EmulatorConfig`),
  `GET /_emulator/config`, `GET /_emulator/messages`, `GET /_emulator/stats`,
  `POST /_emulator/reset` (forget messages and stats, restore the default config).

Deliberate simplifications: the sender is never checked against an account's numbers; a message
is "sent" the moment it is accepted (`date_sent` is set at once, so `DateSent` filters find it);
inbound messages posted with `send_inbound` are not added to the Messages list; fault injection
applies to message creation only, latency to every API request.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import copy
import hmac
import json
import queue
import random
import re
import socket
import socketserver
import sys
import threading
import traceback
import urllib.error
import urllib.parse
import urllib.request
import uuid
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from datetime import UTC, date, datetime
from email.utils import format_datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any

from twilio.request_validator import RequestValidator

API_VERSION = "2010-04-01"
DEFAULT_ACCOUNT_SID = "ACaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
DEFAULT_AUTH_TOKEN = "0123456789abcdef0123456789abcdef"  # noqa: S105 - the emulator's fake token
#: The emulator's own number: the To of inbound webhooks, the From of Messaging Service sends.
DEFAULT_NUMBER = "+15005550006"
MAX_BODY_CHARS = 1600
MAX_PAGE_SIZE = 1000
DEFAULT_PAGE_SIZE = 50

_E164 = re.compile(r"^\+[1-9]\d{1,14}$")
_MESSAGES_PATH = re.compile(r"^/2010-04-01/Accounts/(?P<account>[^/]+)/Messages\.json$")
_MESSAGE_PATH = re.compile(
    r"^/2010-04-01/Accounts/(?P<account>[^/]+)/Messages/(?P<sid>[^/]+)\.json$"
)

# GSM 03.38: the basic set costs one septet, the extension set two (escape + character).
_GSM7_BASIC = frozenset(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
_GSM7_EXTENDED = frozenset("^{}\\[~]|€\f")

# Twilio's wording for the errors the emulator produces.
_ERROR_MESSAGES: dict[int, str] = {
    20001: "Invalid request parameter",
    20003: "Authentication Error - invalid username",
    20404: "The requested resource was not found",
    20429: "Too Many Requests",
    20500: "An internal server error has occurred",
    20503: "Service Unavailable",
    21211: "The 'To' number is not a valid phone number.",
    21602: "Message body is required.",
    21603: "The 'From' phone number is required.",
    21604: "A 'To' phone number is required.",
    21610: "Attempt to send to unsubscribed recipient",
    21614: "'To' number is not a valid mobile number",
    21617: "The concatenated message body exceeds the 1600 character limit.",
}


def sms_encoding(body: str) -> str:
    """Return "GSM-7" when every character is in the GSM 03.38 sets, else "UCS-2"."""
    if all(c in _GSM7_BASIC or c in _GSM7_EXTENDED for c in body):
        return "GSM-7"
    return "UCS-2"


def count_segments(body: str) -> int:
    """Segments Twilio bills for `body`: 160/153 septets in GSM-7, 70/67 UTF-16 units in UCS-2.

    One character outside GSM-7 (a curly quote, an emoji) switches the whole message to UCS-2.
    An escape pair or a surrogate pair is never split across two segments.
    """
    if sms_encoding(body) == "GSM-7":
        units = [2 if c in _GSM7_EXTENDED else 1 for c in body]
        single, multi = 160, 153
    else:
        units = [2 if ord(c) > 0xFFFF else 1 for c in body]
        single, multi = 70, 67
    if sum(units) <= single:
        return 1
    segments, used = 1, 0
    for unit in units:
        if used + unit > multi:
            segments += 1
            used = 0
        used += unit
    return segments


def _rfc2822(moment: datetime | None) -> str | None:
    return None if moment is None else format_datetime(moment.astimezone(UTC))


def _more_info(code: int) -> str:
    return f"https://www.twilio.com/docs/errors/{code}"


def twilio_error(code: int, status: int, message: str | None = None) -> dict[str, Any]:
    """Twilio's error body: `{"code", "message", "more_info", "status"}`."""
    return {
        "code": code,
        "message": message or _ERROR_MESSAGES.get(code, "Error"),
        "more_info": _more_info(code),
        "status": status,
    }


@dataclass
class EmulatorConfig:
    """Fault injection and behaviour, settable from Python or `POST /_emulator/config`."""

    #: Added to every API request before it is answered.
    latency_ms: float = 0.0
    #: Probability that a message creation is answered with one of `errors` instead.
    error_rate: float = 0.0
    #: `[http_status, twilio_code]` pairs, one chosen at random when `error_rate` hits.
    errors: list[list[int]] = field(default_factory=lambda: [[429, 20429], [500, 20500]])
    #: Probability that an accepted message's response is held for `hang_seconds` (the client
    #: times out after its request was accepted: the "unknown outcome" case).
    timeout_after_accept_rate: float = 0.0
    hang_seconds: float = 30.0
    #: Per-number behaviour. `{"code": 21610, "status": 400}` rejects sends to that number;
    #: `{"delivery_error": 30003}` (or a 30xxx `code` without `status`) accepts them and then
    #: reports `undelivered` with that ErrorCode in the status callbacks.
    numbers: dict[str, dict[str, Any]] = field(default_factory=dict)
    #: When true, accepted messages with a StatusCallback get signed `sent` then `delivered`
    #: (or `undelivered`) callbacks from a background thread.
    status_callbacks: bool = False
    callback_delay_ms: float = 0.0
    #: Seconds put in the `Retry-After` header of an injected 429.
    retry_after: int = 1
    #: Seed for the random choices; None seeds from the OS.
    seed: int | None = None
    #: When true, listing messages ignores the `To` filter and answers with everyone's (as a
    #: misbehaving proxy or a changed API might): what reconciliation must not trust.
    list_ignores_to: bool = False

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    def merged(self, changes: Mapping[str, Any]) -> EmulatorConfig:
        """A new config with `changes` applied; raises ValueError naming a bad key or value."""
        data = self.to_json()
        for key, value in changes.items():
            if key not in data:
                raise ValueError(f"unknown config key {key!r}")
            data[key] = value
        new = EmulatorConfig(**data)
        new._validate()
        return new

    def _validate(self) -> None:
        for name in ("error_rate", "timeout_after_accept_rate"):
            value = getattr(self, name)
            if not isinstance(value, int | float) or not 0.0 <= float(value) <= 1.0:
                raise ValueError(f"{name} must be a number between 0 and 1")
        for name in ("latency_ms", "hang_seconds", "callback_delay_ms"):
            value = getattr(self, name)
            if not isinstance(value, int | float) or value < 0:
                raise ValueError(f"{name} must be a number >= 0")
        if not isinstance(self.retry_after, int) or self.retry_after < 0:
            raise ValueError("retry_after must be an integer >= 0")
        for name in ("status_callbacks", "list_ignores_to"):
            if not isinstance(getattr(self, name), bool):
                raise ValueError(f"{name} must be true or false")
        if self.seed is not None and not isinstance(self.seed, int):
            raise ValueError("seed must be an integer or null")
        if not isinstance(self.errors, list) or not all(
            isinstance(pair, list | tuple)
            and len(pair) == 2
            and all(isinstance(x, int) for x in pair)
            and 400 <= pair[0] <= 599
            for pair in self.errors
        ):
            raise ValueError("errors must be a list of [http_status, twilio_code] pairs")
        self.errors = [[int(s), int(c)] for s, c in self.errors]
        if not isinstance(self.numbers, dict) or not all(
            isinstance(k, str) and isinstance(v, dict) for k, v in self.numbers.items()
        ):
            raise ValueError("numbers must map a phone number to an object")
        for rule in self.numbers.values():
            for key in ("code", "status", "delivery_error"):
                if key in rule and not isinstance(rule[key], int):
                    raise ValueError(f"numbers: {key} must be an integer")
            if "code" not in rule and "delivery_error" not in rule:
                raise ValueError("numbers: each rule needs a code or a delivery_error")


@dataclass
class _Message:
    sid: str
    account_sid: str
    to: str
    from_: str | None
    body: str
    messaging_service_sid: str | None
    status_callback: str | None
    status: str
    num_segments: int
    date_created: datetime
    date_sent: datetime | None
    date_updated: datetime
    params: dict[str, str]
    seq: int
    delivery_error: int | None = None
    error_code: int | None = None

    def resource(self) -> dict[str, Any]:
        """The Message resource exactly as Twilio's JSON has it (numbers as strings)."""
        base = f"/{API_VERSION}/Accounts/{self.account_sid}/Messages/{self.sid}"
        return {
            "account_sid": self.account_sid,
            "api_version": API_VERSION,
            "body": self.body,
            "date_created": _rfc2822(self.date_created),
            "date_sent": _rfc2822(self.date_sent),
            "date_updated": _rfc2822(self.date_updated),
            "direction": "outbound-api",
            "error_code": self.error_code,
            "error_message": None,
            "from": self.from_,
            "messaging_service_sid": self.messaging_service_sid,
            "num_media": "0",
            "num_segments": str(self.num_segments),
            "price": None,
            "price_unit": "USD",
            "sid": self.sid,
            "status": self.status,
            "subresource_uris": {
                "media": f"{base}/Media.json",
                "feedback": f"{base}/Feedback.json",
            },
            "to": self.to,
            "uri": f"{base}.json",
        }

    def record(self) -> dict[str, Any]:
        """The resource plus what the emulator saw: the StatusCallback and the raw form."""
        out = self.resource()
        out["status_callback"] = self.status_callback
        out["params"] = dict(self.params)
        return out


@dataclass(frozen=True)
class WebhookResponse:
    """What a webhook target answered (shaped like `httpx.Response` for the parts tests use)."""

    status_code: int
    headers: dict[str, str]
    text: str

    def json(self) -> Any:
        return json.loads(self.text)


class _ApiError(Exception):
    def __init__(self, status: int, code: int, message: str | None = None) -> None:
        super().__init__(message or _ERROR_MESSAGES.get(code, "Error"))
        self.status = status
        self.code = code
        self.message = message


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    # Benchmarks open ~100 connections at once; the default backlog of 5 would drop SYNs.
    request_queue_size = 512

    def __init__(self, address: tuple[str, int], emulator: TwilioEmulator) -> None:
        self.emulator = emulator
        if ":" in address[0]:
            self.address_family = socket.AF_INET6
        super().__init__(address, _Handler)

    def server_bind(self) -> None:
        # HTTPServer.server_bind does a reverse DNS lookup (getfqdn) that can take seconds.
        socketserver.TCPServer.server_bind(self)
        host, port = self.server_address[:2]
        self.server_name = str(host)
        self.server_port = int(port)

    def handle_error(self, request: Any, client_address: Any) -> None:
        exc = sys.exc_info()[1]
        if isinstance(exc, OSError):
            return  # the client went away (timed out, reset): expected under fault injection
        super().handle_error(request, client_address)


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.1"  # keep-alive, as the SDK's HTTP client expects
    timeout = 60  # idle keep-alive connections are closed after a minute
    # Headers and body go out in one write: wfile is buffered and flushed once per response
    # (one send system call instead of two; ~2 % of the emulator's CPU per request). Nagle
    # stays off for responses larger than the buffer, whose last part would otherwise wait
    # for the client's delayed ACK (~40 ms).
    wbufsize = 64 * 1024
    disable_nagle_algorithm = True
    server_version = "TwilioEmulator/1.0"
    sys_version = ""

    def setup(self) -> None:
        super().setup()
        self.server.emulator._track(self.connection, add=True)

    def finish(self) -> None:
        try:
            super().finish()
        finally:
            self.server.emulator._track(self.connection, add=False)

    def log_message(self, format: str, *args: Any) -> None:
        # Request lines carry phone numbers in query strings: say nothing unless asked.
        if self.server.emulator.verbose:
            sys.stderr.write(f"emulator: {format % args}\n")

    def do_GET(self) -> None:
        self._dispatch("GET")

    def do_POST(self) -> None:
        self._dispatch("POST")

    def do_DELETE(self) -> None:
        self._dispatch("DELETE")

    def _dispatch(self, method: str) -> None:
        try:
            length = int(self.headers.get("Content-Length") or 0)
        except ValueError:
            length = 0
        raw = self.rfile.read(length) if length > 0 else b""
        try:
            status, payload, headers = self.server.emulator._handle(
                method, self.path, self.headers.get("Authorization"), raw
            )
        except Exception:  # a bug in the emulator: say so, and answer 500 rather than hang
            traceback.print_exc(file=sys.stderr)
            status, payload, headers = 500, twilio_error(20500, 500), {}
        self._send_json(status, payload, headers)

    def _send_json(self, status: int, payload: Any, headers: Mapping[str, str]) -> None:
        body = json.dumps(payload).encode("utf-8")
        try:
            self.send_response(status)
            self.send_header("Content-Type", "application/json; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            for name, value in headers.items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(body)
            self.wfile.flush()
        except OSError:
            self.close_connection = True


class TwilioEmulator:
    """A Twilio Messages API on loopback. Thread-safe; use as a context manager or start/stop."""

    def __init__(
        self,
        account_sid: str = DEFAULT_ACCOUNT_SID,
        auth_token: str = DEFAULT_AUTH_TOKEN,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        clock: Callable[[], datetime] | None = None,
        verbose: bool = False,
    ) -> None:
        self.account_sid = account_sid
        self.auth_token = auth_token
        self.host = host
        self.port = port
        self.verbose = verbose
        self._clock = clock or (lambda: datetime.now(UTC))
        self._lock = threading.Lock()
        self._messages: dict[str, _Message] = {}
        self._seq = 0
        self._config = EmulatorConfig()
        self._rng = random.Random()  # fault injection, not security
        self._stats: dict[str, Any] = {}
        self._reset_stats()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self._callback_thread: threading.Thread | None = None
        self._callbacks: queue.Queue[str | None] = queue.Queue()
        self._stopping = threading.Event()
        self._connections: set[socket.socket] = set()

    # -- lifecycle ---------------------------------------------------------------------------

    def start(self) -> TwilioEmulator:
        """Bind and serve in a daemon thread; returns self. `port=0` picks a free port."""
        if self._server is not None:
            return self
        self._stopping.clear()
        self._callbacks = queue.Queue()
        self._server = _Server((self.host, self.port), self)
        self.port = int(self._server.server_address[1])
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name=f"twilio-emulator:{self.port}",
            daemon=True,
        )
        self._thread.start()
        self._callback_thread = threading.Thread(
            target=self._callback_worker, name="twilio-emulator-callbacks", daemon=True
        )
        self._callback_thread.start()
        return self

    def stop(self) -> None:
        """Stop serving, wake held responses and close open connections."""
        server = self._server
        if server is None:
            return
        self._stopping.set()
        server.shutdown()
        server.server_close()
        with self._lock:
            connections = list(self._connections)
        for conn in connections:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)
        self._callbacks.put(None)
        if self._thread is not None:
            self._thread.join(timeout=5)
        if self._callback_thread is not None:
            self._callback_thread.join(timeout=5)
        self._server = None
        self._thread = None
        self._callback_thread = None

    def __enter__(self) -> TwilioEmulator:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    @property
    def base_url(self) -> str:
        """E.g. "http://127.0.0.1:54321": what TWILIO_API_URL should be set to."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    def _track(self, conn: socket.socket, *, add: bool) -> None:
        with self._lock:
            if add:
                self._connections.add(conn)
            else:
                self._connections.discard(conn)

    # -- Python control ----------------------------------------------------------------------

    @property
    def messages(self) -> list[dict[str, Any]]:
        """Every accepted message, oldest first: the Message resource plus `status_callback`
        and `params` (the form fields as received)."""
        with self._lock:
            ordered = sorted(self._messages.values(), key=lambda m: m.seq)
            return [m.record() for m in ordered]

    def count_by_to(self) -> dict[str, int]:
        with self._lock:
            return dict(Counter(m.to for m in self._messages.values()))

    @property
    def config(self) -> dict[str, Any]:
        with self._lock:
            return self._config.to_json()

    def configure(self, **changes: Any) -> dict[str, Any]:
        """Merge `changes` into the config (see `EmulatorConfig`); returns the new config."""
        with self._lock:
            self._config = self._config.merged(changes)
            if "seed" in changes:
                self._rng = random.Random(self._config.seed)
            return self._config.to_json()

    def reset(self) -> None:
        """Forget messages and stats and restore the default config."""
        with self._lock:
            self._messages.clear()
            self._config = EmulatorConfig()
            self._rng = random.Random()
            self._reset_stats()

    def stats(self) -> dict[str, Any]:
        with self._lock:
            return copy.deepcopy(self._stats)

    def _reset_stats(self) -> None:
        self._stats = {
            "requests": 0,
            "accepted": 0,
            "errors": {},  # every error answer, by Twilio code
            "injected": {},  # errors injected by error_rate, by Twilio code
            "timeouts_after_accept": 0,
            "callbacks_sent": 0,
            "callbacks_failed": 0,
        }

    def _count(self, bucket: str, code: int) -> None:
        counts = self._stats[bucket]
        counts[str(code)] = counts.get(str(code), 0) + 1

    # -- webhooks ----------------------------------------------------------------------------

    def send_inbound(
        self,
        url: str,
        from_: str,
        body: str,
        to: str | None = None,
        message_sid: str | None = None,
        extra: Mapping[str, str] | None = None,
    ) -> WebhookResponse:
        """POST an inbound SMS webhook to `url`, form-encoded and signed as Twilio signs it."""
        sid = message_sid or _new_sid("SM")
        params = {
            "ToCountry": "US",
            "ToState": "",
            "SmsMessageSid": sid,
            "NumMedia": "0",
            "ToCity": "",
            "FromZip": "",
            "SmsSid": sid,
            "FromState": "",
            "SmsStatus": "received",
            "FromCity": "",
            "Body": body,
            "FromCountry": "US",
            "To": to or DEFAULT_NUMBER,
            "ToZip": "",
            "NumSegments": str(count_segments(body)),
            "MessageSid": sid,
            "AccountSid": self.account_sid,
            "From": from_,
            "ApiVersion": API_VERSION,
        }
        params.update(extra or {})
        return self.post_signed(url, params)

    def send_status(
        self, url: str, message_sid: str, status: str, error_code: int | None = None
    ) -> WebhookResponse:
        """POST a status callback for `message_sid` to `url`, signed as Twilio signs it."""
        with self._lock:
            known = self._messages.get(message_sid)
            to = known.to if known else ""
            from_ = (known.from_ or DEFAULT_NUMBER) if known else DEFAULT_NUMBER
            service = known.messaging_service_sid if known else None
        params = {
            "SmsSid": message_sid,
            "SmsStatus": status,
            "MessageStatus": status,
            "To": to,
            "MessageSid": message_sid,
            "AccountSid": self.account_sid,
            "From": from_,
            "ApiVersion": API_VERSION,
        }
        if service:
            params["MessagingServiceSid"] = service
        if error_code is not None:
            params["ErrorCode"] = str(error_code)
        return self.post_signed(url, params)

    def sign(self, url: str, params: Mapping[str, str]) -> str:
        """The `X-Twilio-Signature` Twilio would send: HMAC-SHA1 of the URL followed by the
        sorted parameters (name + value), keyed with the auth token, base64-encoded."""
        return str(RequestValidator(self.auth_token).compute_signature(url, dict(params)))

    def post_signed(
        self, url: str, params: Mapping[str, str], *, timeout: float = 10.0
    ) -> WebhookResponse:
        """POST `params` form-encoded to `url` with Twilio's signature and headers."""
        if urllib.parse.urlsplit(url).scheme not in ("http", "https"):
            raise ValueError("webhook URL must be http or https")
        data = urllib.parse.urlencode(dict(params)).encode("utf-8")
        request = urllib.request.Request(  # noqa: S310 - scheme checked above
            url,
            data=data,
            method="POST",
            headers={
                "Content-Type": "application/x-www-form-urlencoded; charset=utf-8",
                "X-Twilio-Signature": self.sign(url, params),
                "I-Twilio-Idempotency-Token": str(uuid.uuid4()),
                "User-Agent": "TwilioProxy/1.1",
                "Accept": "*/*",
            },
        )
        try:
            with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310
                return WebhookResponse(
                    response.status,
                    dict(response.headers.items()),
                    response.read().decode("utf-8", "replace"),
                )
        except urllib.error.HTTPError as exc:
            with exc:
                return WebhookResponse(
                    exc.code,
                    dict(exc.headers.items()) if exc.headers else {},
                    exc.read().decode("utf-8", "replace"),
                )

    def _callback_worker(self) -> None:
        while True:
            sid = self._callbacks.get()
            if sid is None or self._stopping.is_set():
                return
            with self._lock:
                delay = self._config.callback_delay_ms / 1000.0
            for final in (False, True):
                if self._stopping.wait(delay):
                    return
                with self._lock:
                    message = self._messages.get(sid)
                    if message is None or message.status_callback is None:
                        break
                    now = self._clock()
                    if not final:
                        message.status = "sent"
                        if message.from_ is None:  # a Messaging Service picked its sender
                            message.from_ = DEFAULT_NUMBER
                            message.num_segments = count_segments(message.body)
                    elif message.delivery_error is not None:
                        message.status = "undelivered"
                        message.error_code = message.delivery_error
                    else:
                        message.status = "delivered"
                    message.date_updated = now
                    url, status, error = message.status_callback, message.status, message.error_code
                try:
                    self.send_status(url, sid, status, error)
                    ok = True
                except (OSError, ValueError):
                    ok = False
                with self._lock:
                    self._stats["callbacks_sent" if ok else "callbacks_failed"] += 1

    # -- the API -----------------------------------------------------------------------------

    def _handle(
        self, method: str, target: str, authorization: str | None, raw: bytes
    ) -> tuple[int, Any, dict[str, str]]:
        parts = urllib.parse.urlsplit(target)
        path = parts.path
        if path.startswith("/_emulator/"):
            return self._control(method, path, raw)

        with self._lock:
            self._stats["requests"] += 1
            latency = self._config.latency_ms / 1000.0
        if latency:
            self._stopping.wait(latency)

        try:
            self._authenticate(authorization)
            if m := _MESSAGES_PATH.match(path):
                self._check_account(m["account"], path)
                if method == "POST":
                    form = _parse_form(raw)
                    return self._create(form)
                if method == "GET":
                    return 200, self._list(path, parts.query), {}
            elif (m := _MESSAGE_PATH.match(path)) and method == "GET":
                self._check_account(m["account"], path)
                with self._lock:
                    message = self._messages.get(m["sid"])
                    if message is not None:
                        return 200, message.resource(), {}
                raise _ApiError(404, 20404, f"The requested resource {path} was not found")
            raise _ApiError(404, 20404, f"The requested resource {path} was not found")
        except _ApiError as err:
            with self._lock:
                self._count("errors", err.code)
            headers = {"WWW-Authenticate": 'Basic realm="Twilio API"'} if err.status == 401 else {}
            return err.status, twilio_error(err.code, err.status, err.message), headers

    def _authenticate(self, authorization: str | None) -> None:
        scheme, _, encoded = (authorization or "").partition(" ")
        if scheme.lower() != "basic":
            raise _ApiError(401, 20003)
        try:
            user, _, password = base64.b64decode(encoded).decode("utf-8").partition(":")
        except (binascii.Error, UnicodeDecodeError):
            raise _ApiError(401, 20003) from None
        ok_user = hmac.compare_digest(user.encode(), self.account_sid.encode())
        ok_password = hmac.compare_digest(password.encode(), self.auth_token.encode())
        if not (ok_user and ok_password):
            raise _ApiError(401, 20003)

    def _check_account(self, account: str, path: str) -> None:
        if account != self.account_sid:
            raise _ApiError(404, 20404, f"The requested resource {path} was not found")

    def _create(self, form: dict[str, str]) -> tuple[int, Any, dict[str, str]]:
        with self._lock:
            config = self._config
            injected: list[int] | None = None
            if config.error_rate and config.errors and self._rng.random() < config.error_rate:
                injected = self._rng.choice(config.errors)
            hang = bool(
                config.timeout_after_accept_rate
                and self._rng.random() < config.timeout_after_accept_rate
            )
        if injected is not None:
            status, code = injected
            with self._lock:
                self._count("injected", code)
                self._count("errors", code)
            headers = {"Retry-After": str(config.retry_after)} if status == 429 else {}
            return status, twilio_error(code, status), headers

        to = form.get("To", "").strip()
        from_ = form.get("From", "").strip() or None
        service = form.get("MessagingServiceSid", "").strip() or None
        body = form.get("Body", "")
        if not to:
            raise _ApiError(400, 21604)
        if not _E164.match(to):
            raise _ApiError(400, 21211, f"The 'To' number {to} is not a valid phone number.")
        if from_ is None and service is None:
            raise _ApiError(400, 21603)
        if not body:
            raise _ApiError(400, 21602)
        if len(body) > MAX_BODY_CHARS:
            raise _ApiError(400, 21617)

        rule = config.numbers.get(to)
        delivery_error: int | None = None
        if rule is not None:
            rule_code = rule.get("code")
            if "delivery_error" in rule:
                delivery_error = int(rule["delivery_error"])
            elif isinstance(rule_code, int) and rule_code >= 30000 and "status" not in rule:
                delivery_error = rule_code
            elif isinstance(rule_code, int):
                raise _ApiError(int(rule.get("status", 400)), rule_code, rule.get("message"))

        now = self._clock()
        callback = form.get("StatusCallback") or None
        with self._lock:
            self._seq += 1
            message = _Message(
                sid=_new_sid("SM"),
                account_sid=self.account_sid,
                to=to,
                from_=from_,
                body=body,
                messaging_service_sid=service,
                status_callback=callback,
                # Through a Messaging Service Twilio answers "accepted" with no sender and
                # 0 segments until it picks a sender; with a From it answers "queued".
                status="queued" if from_ else "accepted",
                num_segments=count_segments(body) if from_ else 0,
                date_created=now,
                date_sent=now,
                date_updated=now,
                params=dict(form),
                seq=self._seq,
                delivery_error=delivery_error,
            )
            self._messages[message.sid] = message
            self._stats["accepted"] += 1
            if hang:
                self._stats["timeouts_after_accept"] += 1
            resource = message.resource()
            callbacks_on = config.status_callbacks and callback is not None
        if callbacks_on:
            self._callbacks.put(message.sid)
        if hang:
            # The message is recorded; the client gives up waiting for this answer.
            self._stopping.wait(config.hang_seconds)
        return 201, resource, {}

    def _list(self, path: str, query: str) -> dict[str, Any]:
        pairs = urllib.parse.parse_qsl(query, keep_blank_values=True)
        args = dict(pairs)
        filters = [
            (k, v) for k, v in pairs if k in ("To", "From", "DateSent", "DateSent<", "DateSent>")
        ]
        try:
            page_size = min(max(int(args.get("PageSize", DEFAULT_PAGE_SIZE)), 1), MAX_PAGE_SIZE)
            page = max(int(args.get("Page", 0)), 0)
        except ValueError:
            raise _ApiError(400, 20001, "Invalid PageSize or Page") from None
        on, before, after = (
            _filter_date(args.get(k)) for k in ("DateSent", "DateSent<", "DateSent>")
        )

        with self._lock:
            by_to = "To" in args and not self._config.list_ignores_to
            matching = [
                m
                for m in self._messages.values()
                if (not by_to or m.to == args["To"])
                and ("From" not in args or m.from_ == args["From"])
                and _date_matches(m.date_sent, on, before, after)
            ]
            # Newest first, as Twilio lists them.
            matching.sort(key=lambda m: (m.date_sent or m.date_created, m.seq), reverse=True)
            token = args.get("PageToken")
            if token:
                index = next((i for i, m in enumerate(matching) if m.sid == token[2:]), None)
                if index is None or token[:2] not in ("PA", "PB"):
                    raise _ApiError(400, 20001, "Invalid PageToken")
                start = index + 1 if token[:2] == "PA" else max(index - page_size, 0)
                stop = start + page_size if token[:2] == "PA" else index
            else:
                start = page * page_size
                stop = start + page_size
            items = matching[start:stop]
            has_next = stop < len(matching)
            records = [m.resource() for m in items]

        def uri(page_number: int, page_token: str | None = None) -> str:
            query_pairs = [*filters, ("PageSize", str(page_size)), ("Page", str(page_number))]
            if page_token:
                query_pairs.append(("PageToken", page_token))
            return f"{path}?{urllib.parse.urlencode(query_pairs)}"

        return {
            "end": start + max(len(items) - 1, 0),
            "first_page_uri": uri(0),
            "messages": records,
            "next_page_uri": uri(page + 1, "PA" + items[-1].sid) if has_next and items else None,
            "page": page,
            "page_size": page_size,
            "previous_page_uri": (
                uri(page - 1, "PB" + items[0].sid) if page > 0 and items else None
            ),
            "start": start,
            "uri": uri(page, token) if token else uri(page),
        }

    def _control(self, method: str, path: str, raw: bytes) -> tuple[int, Any, dict[str, str]]:
        if method == "GET" and path == "/_emulator/messages":
            return 200, self.messages, {}
        if method == "GET" and path == "/_emulator/stats":
            return 200, self.stats(), {}
        if method == "GET" and path == "/_emulator/config":
            return 200, self.config, {}
        if method == "POST" and path == "/_emulator/reset":
            self.reset()
            return 200, {"ok": True}, {}
        if method == "POST" and path == "/_emulator/config":
            try:
                changes = json.loads(raw or b"{}")
                if not isinstance(changes, dict):
                    raise ValueError("expected a JSON object")
                return 200, self.configure(**changes), {}
            except (ValueError, TypeError) as exc:
                return 400, {"error": str(exc)}, {}
        return 404, {"error": f"no emulator endpoint {method} {path}"}, {}


def _new_sid(prefix: str) -> str:
    return prefix + uuid.uuid4().hex


def _parse_form(raw: bytes) -> dict[str, str]:
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise _ApiError(400, 20001, "Request body is not UTF-8") from None
    # Repeated fields (MediaUrl) keep their last value: the emulator sends no media.
    return dict(urllib.parse.parse_qsl(text, keep_blank_values=True))


def _filter_date(value: str | None) -> date | None:
    """Twilio compares DateSent filters by UTC date: "2024-03-10" and "2024-03-10T15:00:00Z"
    (what the SDK sends for a datetime) both mean the whole of 10 March."""
    if value is None or value == "":
        return None
    try:
        return date.fromisoformat(value[:10])
    except ValueError:
        raise _ApiError(400, 20001, "Invalid DateSent") from None


def _date_matches(
    sent: datetime | None, on: date | None, before: date | None, after: date | None
) -> bool:
    if on is None and before is None and after is None:
        return True
    if sent is None:
        return False
    day = sent.astimezone(UTC).date()
    return (
        (on is None or day == on)
        and (before is None or day <= before)
        and (after is None or day >= after)
    )
