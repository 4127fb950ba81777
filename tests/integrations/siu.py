"""Build SIU messages and talk to the listener with python-hl7's own MLLP client."""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator
from typing import Any

import hl7
from hl7.mllp import open_hl7_connection

from worker.hl7_listener import serve
from worker.services.records.hl7_inbox import FeedContext


def siu(
    trigger: str,
    control_id: str,
    *,
    mrn: str | None = "MRN1001",
    placer: str = "A-1",
    start: str | None = "20261210140000-0500",
    kind: str = "INF^Ketamine infusion",
    phone: str = "^PRN^CP^^1^212^5550101",
    email: str = "^NET^Internet^alex@example.org",
    name: str = "Rivera^Alex",
    language: str = "es^Spanish",
    location: str = "SUITE200^^^Riverside",
    sender: str = "PMS|CLINIC",
) -> str:
    pid3 = f"{mrn}^^^HOSP^MR" if mrn else ""
    segs = [
        f"MSH|^~\\&|{sender}|CHECKIN|CLINIC|20261201120000||SIU^{trigger}^SIU_S12|{control_id}|P|2.5.1",
        f"SCH|{placer}^PMS|F-{placer}^EHR|||||{kind}||||^^60^{start or ''}",
        f"PID|1||{pid3}||{name}||19800102|F|||||{phone}~{email}||{language}",
        "RGS|1",
        f"AIS|1||{kind}|{start or ''}",
        f"AIL|1||{location}",
    ]
    return "\r".join(segs)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.asynccontextmanager
async def listener(ctx: FeedContext) -> AsyncIterator[int]:
    port = free_port()
    started = asyncio.Event()
    task = asyncio.create_task(serve(ctx, "127.0.0.1", port, started))
    await asyncio.wait_for(started.wait(), 10)
    try:
        yield port
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


class Client:
    """One MLLP connection: send a message (text or raw bytes), read its ACK."""

    def __init__(self, reader: Any, writer: Any) -> None:
        self.reader, self.writer = reader, writer

    @classmethod
    async def open(cls, port: int) -> Client:
        reader, writer = await open_hl7_connection("127.0.0.1", port, encoding="utf-8")
        return cls(reader, writer)

    async def send(self, text: str) -> Any:
        self.writer.writemessage(hl7.parse(text))
        await self.writer.drain()
        return await asyncio.wait_for(self.reader.readmessage(), 30)

    async def send_raw(self, data: bytes) -> Any:
        self.writer.writeblock(data)
        await self.writer.drain()
        return await asyncio.wait_for(self.reader.readmessage(), 30)

    async def close(self) -> None:
        self.writer.close()
        with contextlib.suppress(Exception):
            await self.writer.wait_closed()


def ack_code(ack: Any) -> str:
    return str(ack.segment("MSA")[1])


def err_text(ack: Any) -> str:
    try:
        return str(ack.segment("ERR")[8])
    except KeyError:
        return ""
