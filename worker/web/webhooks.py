"""Twilio webhooks: inbound SMS and status callbacks.

Every request must carry a valid X-Twilio-Signature computed over CHECKIN_PUBLIC_URL + path (+
query) and the form parameters; anything else gets 403 and changes nothing. An inbound message is
stored (UNIQUE MessageSid, so Twilio's retries are answered and ignored) and handed off; the
response goes back at once, before any processing.
"""

from __future__ import annotations

import logging
from datetime import datetime

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import Response
from sqlalchemy import select, update
from sqlalchemy.exc import InterfaceError, OperationalError
from starlette.concurrency import run_in_threadpool

from worker.config import Settings
from worker.services.followups import raise_followup
from worker.services.inbound import receive_sms
from worker.services.patients import withdraw_consent
from worker.services.runtime import Runtime
from worker.store.db import session_scope
from worker.store.models import Message
from worker.web.inbound_sink import InboundSink

log = logging.getLogger(__name__)

TWIML_EMPTY = '<?xml version="1.0" encoding="UTF-8"?><Response></Response>'
MAX_BODY = 64 * 1024

# Twilio's delivery states and the rows they may move from (never backwards).
STATUS_MOVES = {
    "delivered": ("sending", "sent", "unknown", "undelivered"),
    "undelivered": ("sending", "sent", "unknown"),
    "failed": ("sending", "sent", "unknown"),
}


def _public_url(settings: Settings, request: Request) -> str:
    url = settings.public_url + request.url.path
    if request.url.query:
        url += "?" + request.url.query
    return url


async def _verified_form(settings: Settings, request: Request) -> dict[str, str]:
    from twilio.request_validator import RequestValidator

    raw = await request.body()
    if len(raw) > MAX_BODY:
        raise HTTPException(413, "request body too large")
    form = await request.form()
    params = {k: v for k, v in form.items() if isinstance(v, str)}
    signature = request.headers.get("X-Twilio-Signature", "")
    token = settings.twilio_auth_token
    if not signature or token is None:
        raise HTTPException(403, "missing or unverifiable signature")
    validator = RequestValidator(token.get_secret_value())
    if not validator.validate(_public_url(settings, request), params, signature):
        raise HTTPException(403, "invalid signature")
    return params


def webhook_router(settings: Settings, rt: Runtime, sink: InboundSink) -> APIRouter:
    router = APIRouter(include_in_schema=False)

    @router.post("/webhooks/twilio/sms")
    async def inbound_sms(request: Request) -> Response:
        params = await _verified_form(settings, request)
        sid = params.get("MessageSid") or params.get("SmsSid")
        sender = params.get("From")
        if not sid or not sender:
            raise HTTPException(400, "MessageSid and From are required")
        text = {
            "sid": sid[:64],
            "from_": sender[:320],
            "to": (params.get("To") or "")[:320],
            "body": params.get("Body", ""),
            "received_at": settings.now().isoformat(),
        }
        # The database write and the broker hand-off block: run them in the threadpool so the
        # event loop keeps accepting requests while they wait.
        try:
            inbound_id, new = await run_in_threadpool(
                receive_sms,
                rt,
                sid=text["sid"],
                from_=text["from_"],
                to=text["to"] or None,
                body=text["body"],
                now=datetime.fromisoformat(text["received_at"]),
            )
        except (OperationalError, InterfaceError):
            # The database is unreachable. Twilio does not retry a webhook that failed (not
            # without connection overrides on its URL), so the text, a STOP or crisis words
            # perhaps, would be lost: the broker keeps it until it can be stored.
            if not await run_in_threadpool(sink.store_later, text):
                raise HTTPException(503, "the database is unavailable") from None
            log.warning("inbound reply kept by the broker: the database is unavailable")
            return Response(TWIML_EMPTY, media_type="application/xml")
        if new:
            await run_in_threadpool(sink.submit, inbound_id)
        else:
            log.info("inbound %d: repeated MessageSid ignored", inbound_id)
        return Response(TWIML_EMPTY, media_type="application/xml")

    @router.post("/webhooks/twilio/status")
    async def status_callback(request: Request) -> Response:
        params = await _verified_form(settings, request)
        sid = params.get("MessageSid") or params.get("SmsSid") or ""
        status = (params.get("MessageStatus") or params.get("SmsStatus") or "").lower()
        code = params.get("ErrorCode") or None
        await run_in_threadpool(apply_status, rt, sid, status, code, settings.now())
        # 200 even for an unknown id, or Twilio retries it for no gain (STYLE.md 2).
        return Response(status_code=200)

    return router


def apply_status(rt: Runtime, sid: str, status: str, code: str | None, now: datetime) -> None:
    if status not in STATUS_MOVES or not sid:
        return
    with session_scope(rt.sessions) as session:
        msg = session.scalar(select(Message).where(Message.provider_id == sid))
        if msg is None:
            log.info("status callback for an unknown message (%s)", status)
            return
        values: dict[str, object] = {"status": status, "updated_at": now}
        if status == "delivered":
            values["delivered_at"] = now
        if code:
            values["error_code"] = code[:20]
        moved = session.execute(
            update(Message)
            .where(Message.id == msg.id, Message.status.in_(STATUS_MOVES[status]))
            .values(**values)
        )
        if getattr(moved, "rowcount", 0) != 1 or msg.patient_id is None:
            return
        if code == "21610":
            withdraw_consent(
                session,
                msg.patient_id,
                "sms",
                now=now,
                source="carrier opt-out (Twilio 21610)",
                actor="system",
            )
        elif status in ("undelivered", "failed"):
            raise_followup(
                session,
                patient_id=msg.patient_id,
                reason="delivery_failed",
                severity="routine",
                detail={"message_id": msg.id, "status": status, "error_code": code},
                now=now,
            )
