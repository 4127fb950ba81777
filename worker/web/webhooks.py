"""Twilio webhooks: inbound SMS and status callbacks.

Every request must carry a valid X-Twilio-Signature computed over CHECKIN_PUBLIC_URL + path (+
query) and the form parameters; anything else gets 403 and changes nothing. An inbound message is
stored (UNIQUE MessageSid, so Twilio's retries are answered and ignored) and handed off; the
response goes back at once, before any processing.

When the database cannot be reached, Twilio would not try again (it retries a webhook only on a
failed connection, and only with connection overrides on its URL, within 15 seconds): an inbound
reply or a status callback answered 5xx would be lost. The broker keeps it instead (tasks
`checkin.inbound_unstored` and `checkin.status_unapplied`) until the database answers; only
when the broker cannot take it either is the answer 503.

These two routes are the system's hot path (hundreds a second when a clinic's check-ins go out
and the replies come back), so they are served by a small ASGI middleware in front of FastAPI's
router, not by FastAPI routes: no dependency resolution, no form machinery, one trip to a
thread pool for the blocking work. Everything else in the app is unaffected.
"""

from __future__ import annotations

import asyncio
import logging
import urllib.parse
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from typing import Any

from sqlalchemy.exc import InterfaceError, OperationalError
from starlette.types import ASGIApp, Receive, Scope, Send

from worker.config import Settings
from worker.domain.keywords import detect_crisis
from worker.services.inbound.receive import receive_sms
from worker.services.outbound.status_callbacks import STATUS_MOVES, apply_status
from worker.services.runtime import Runtime
from worker.web.inbound_sink import InboundSink

log = logging.getLogger(__name__)

__all__ = ["STATUS_MOVES", "TwilioWebhooks", "apply_status"]

SMS_PATH = "/webhooks/twilio/sms"
STATUS_PATH = "/webhooks/twilio/status"
TWIML_EMPTY = b'<?xml version="1.0" encoding="UTF-8"?><Response></Response>'
MAX_BODY = 64 * 1024
_DB_DOWN = (OperationalError, InterfaceError)


class _Refused(Exception):
    def __init__(self, status: int, detail: str) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail


class TwilioWebhooks:
    """ASGI middleware answering POST /webhooks/twilio/sms and /webhooks/twilio/status itself;
    every other request goes on to `app`.

    The blocking work of a request (the database, the broker) runs in a thread pool of
    `threads`: a few threads keep the interpreter's lock from being passed around among dozens,
    and each needs at most one database connection, so `threads` should not exceed the pool."""

    def __init__(
        self, app: ASGIApp, settings: Settings, rt: Runtime, sink: InboundSink, threads: int = 8
    ) -> None:
        from twilio.request_validator import RequestValidator

        self.app = app
        self.settings = settings
        self.rt = rt
        self.sink = sink
        token = settings.twilio_auth_token
        self.validator = RequestValidator(token.get_secret_value()) if token else None
        self.pool = ThreadPoolExecutor(threads, thread_name_prefix="webhook")

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path") if scope["type"] == "http" else None
        if path != SMS_PATH and path != STATUS_PATH:
            await self.app(scope, receive, send)
            return
        if scope["method"] != "POST":
            await _problem(send, 405, "Method not allowed", "Method Not Allowed", allow=True)
            return
        try:
            params = await self._verified_form(scope, receive)
            if path == SMS_PATH:
                body = await self._inbound_sms(params)
                await _answer(send, 200, body, b"application/xml")
            else:
                await self._status_callback(params)
                # 200 even for an unknown id, or Twilio retries it for no gain (STYLE.md 2).
                await _answer(send, 200, b"", None)
        except _Refused as refused:
            if refused.status == 403:
                # Who and why, never the body (it may hold a patient's text).
                client = scope.get("client")
                log.warning(
                    "webhook %s refused: address=%s reason=%s",
                    path,
                    client[0] if client else "unknown",
                    refused.detail,
                )
            title = {400: "Error", 403: "Forbidden", 413: "Too large", 503: "Error"}
            await _problem(send, refused.status, title[refused.status], refused.detail)

    async def _verified_form(self, scope: Scope, receive: Receive) -> dict[str, str]:
        raw = await _read_body(receive)
        # As the FastAPI form did: UTF-8, blank values kept, the last value of a repeated key.
        params = dict(
            urllib.parse.parse_qsl(raw.decode("latin-1"), keep_blank_values=True, errors="replace")
        )
        signature = _header(scope, b"x-twilio-signature")
        if not signature or self.validator is None:
            raise _Refused(403, "missing or unverifiable signature")
        if not self.validator.validate(self._public_url(scope), params, signature):
            raise _Refused(403, "invalid signature")
        return params

    def _public_url(self, scope: Scope) -> str:
        # The URL Twilio was given, never the Host or X-Forwarded-* headers (a proxy in front).
        # The path escaped as Starlette's request.url.path has it.
        path = str(scope["path"]).replace("?", "%3F").replace("#", "%23").replace("\\", "%5C")
        url = self.settings.public_url + path
        query: bytes = scope.get("query_string", b"")
        if query:
            url += "?" + query.decode("utf-8", "replace")
        return url

    async def _run(self, fn: Any, *args: Any) -> Any:
        return await asyncio.get_running_loop().run_in_executor(self.pool, fn, *args)

    async def _inbound_sms(self, params: dict[str, str]) -> bytes:
        sid = params.get("MessageSid") or params.get("SmsSid")
        sender = params.get("From")
        if not sid or not sender:
            raise _Refused(400, "MessageSid and From are required")
        text = {
            "sid": sid[:64],
            "from_": sender[:320],
            "to": (params.get("To") or "")[:320],
            "body": params.get("Body", ""),
            "received_at": self.settings.now().isoformat(),
        }
        try:
            await self._run(_store_and_hand_off, self.rt, self.sink, text)
        except _DB_DOWN:
            # The text, a STOP or crisis words perhaps, would be lost: the broker keeps it.
            if not await self._run(self.sink.store_later, text):
                raise _Refused(503, "the database is unavailable") from None
            log.warning("inbound reply kept by the broker: the database is unavailable")
        return TWIML_EMPTY

    async def _status_callback(self, params: dict[str, str]) -> None:
        report = {
            "sid": (params.get("MessageSid") or params.get("SmsSid") or "")[:64],
            "status": (params.get("MessageStatus") or params.get("SmsStatus") or "").lower(),
            "code": params.get("ErrorCode") or "",
            "received_at": self.settings.now().isoformat(),
        }
        if report["status"] not in STATUS_MOVES or not report["sid"]:
            return  # queued, sent, ...: nothing to record
        try:
            await self._run(_apply, self.rt, report)
        except _DB_DOWN:
            # A carrier opt-out (21610) or a failed delivery would be lost with it.
            if not await self._run(self.sink.apply_status_later, report):
                raise _Refused(503, "the database is unavailable") from None
            log.warning("status callback kept by the broker: the database is unavailable")


def _store_and_hand_off(rt: Runtime, sink: InboundSink, text: dict[str, str]) -> None:
    inbound_id, new = receive_sms(
        rt,
        sid=text["sid"],
        from_=text["from_"],
        to=text["to"] or None,
        body=text["body"],
        now=datetime.fromisoformat(text["received_at"]),
    )
    if new:
        # The same detector the worker applies: a crisis reply goes on its own queue, ahead of
        # any burst of routine ones (a few microseconds per text; bench/webhooks.py).
        sink.submit(inbound_id, crisis=detect_crisis(text["body"]) is not None)
    else:
        log.info("inbound %d: repeated MessageSid ignored", inbound_id)


def _apply(rt: Runtime, report: dict[str, str]) -> None:
    received = datetime.fromisoformat(report["received_at"])
    apply_status(rt, report["sid"], report["status"], report["code"] or None, received)


def _header(scope: Scope, name: bytes) -> str:
    for key, value in scope["headers"]:
        if key == name:
            return str(value.decode("latin-1"))
    return ""


async def _read_body(receive: Receive) -> bytes:
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise _Refused(400, "the client went away")
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > MAX_BODY:
            raise _Refused(413, "request body too large")
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks)


async def _answer(send: Send, status: int, body: bytes, content_type: bytes | None) -> None:
    headers = [(b"content-length", str(len(body)).encode())]
    if content_type is not None:
        headers.append((b"content-type", content_type))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


async def _problem(
    send: Send, status: int, title: str, detail: str, *, allow: bool = False
) -> None:
    """The app's RFC 9457 problem document (as worker.web.api.common.problem makes it)."""
    from worker.web.api.common import problem

    response = problem(status, title, detail)
    if allow:
        response.headers["Allow"] = "POST"
    await send({"type": "http.response.start", "status": status, "headers": response.raw_headers})
    await send({"type": "http.response.body", "body": bytes(response.body)})
