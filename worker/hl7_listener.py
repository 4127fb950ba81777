"""The MLLP listener for HL7 v2 SIU feeds (`checkin hl7 listen`, and `checkin run` when
CHECKIN_HL7_PORT is set).

asyncio with python-hl7's MLLP streams: one task per connection, messages on a connection
answered in order (a sender waits for each ACK before the next, which keeps a patient's events
in order). The database work runs in a thread so that other connections keep being served.
Nothing a sender writes can stop the listener: every message gets an ACK (AR when it is not
HL7), and a connection that breaks is closed quietly.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from typing import Any

from hl7.mllp import InvalidBlockError, start_hl7_server

from worker.config import Settings
from worker.domain.hl7_mapping import load_mapping
from worker.services.records.hl7_inbox import FeedContext, handle
from worker.services.runtime import Runtime

log = logging.getLogger(__name__)
# The largest message accepted; SIU messages are a few kB.
MAX_MESSAGE_BYTES = 1024 * 1024
# Seconds an ACK may wait for a sender that stopped reading before the connection is closed.
# Reads have no such bound on purpose: interface engines keep one MLLP connection open and idle
# for hours between messages, and an idle connection holds a coroutine, not a thread. The
# database work per message is bounded by CHECKIN_DB_STATEMENT_TIMEOUT_MS.
WRITE_TIMEOUT_SECONDS = 30.0


def feed_context(rt: Runtime) -> FeedContext:
    s = rt.settings
    if s.clinic_tz is None:
        raise ValueError("CHECKIN_CLINIC_TZ is required for the HL7 feed")
    return FeedContext(
        sessions=rt.sessions,
        mapping=load_mapping(s.hl7_mapping),
        clinic_tz=s.clinic_tz,
        update_contacts=s.hl7_update_contacts,
        now=s.now,
        noshow_text=s.noshow_text,
    )


async def serve_connection(ctx: FeedContext, reader: Any, writer: Any) -> None:
    from worker.domain import siu

    try:
        while True:
            try:
                block: bytes = await reader.readblock()
            except (asyncio.IncompleteReadError, ConnectionError):
                return
            except (InvalidBlockError, ValueError):
                # Not MLLP framing (or too long): answer AR; the stream is realigned at the
                # next end-of-block, so later well-framed messages still get through.
                writer.writeblock(
                    siu.ack(
                        "AR",
                        None,
                        now=ctx.now(),
                        ack_id="0",
                        reason="not_hl7",
                        text="not an MLLP-framed HL7 message",
                    ).encode()
                )
                await asyncio.wait_for(writer.drain(), WRITE_TIMEOUT_SECONDS)
                continue
            text = block.decode("utf-8", errors="replace")
            result = await asyncio.to_thread(handle, ctx, text)
            writer.writeblock(result.ack.encode("utf-8"))
            await asyncio.wait_for(writer.drain(), WRITE_TIMEOUT_SECONDS)
    except (ConnectionError, TimeoutError):
        return
    finally:
        writer.close()


async def serve(
    ctx: FeedContext, host: str, port: int, started: asyncio.Event | None = None
) -> None:
    """Serve until cancelled."""

    async def on_connect(reader: Any, writer: Any) -> None:
        await serve_connection(ctx, reader, writer)

    server = await start_hl7_server(on_connect, host, port, limit=MAX_MESSAGE_BYTES)
    log.info("HL7 MLLP listener on %s:%d", host, port)
    if started is not None:
        started.set()
    async with server:
        await server.serve_forever()


def listen(settings: Settings) -> None:
    """Run the listener in the foreground until SIGINT/SIGTERM."""
    from worker.services.runtime import build_runtime

    if settings.hl7_port is None:
        raise ValueError("CHECKIN_HL7_PORT is not set")
    port = settings.hl7_port
    rt = build_runtime(settings, pool_size=4)
    ctx = feed_context(rt)

    async def main() -> None:
        task = asyncio.ensure_future(serve(ctx, settings.hl7_host, port))
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, task.cancel)
        with contextlib.suppress(asyncio.CancelledError):
            await task

    try:
        asyncio.run(main())
    finally:
        rt.close()
