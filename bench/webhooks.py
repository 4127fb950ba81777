"""Inbound SMS webhooks as Twilio sends them: form-encoded, signed with X-Twilio-Signature
over CHECKIN_PUBLIC_URL + path; the web app (`python -m worker.cli web`) to receive them; and a
cheap load generator (one asyncio thread, requests serialised in advance) so that the client's
own CPU takes as little as possible of the two cores the system under test runs on."""

from __future__ import annotations

import asyncio
import http.client
import json
import time
import urllib.parse
import urllib.request
import uuid
from collections import Counter
from dataclasses import dataclass

from twilio.request_validator import RequestValidator

from bench.harness import CLINIC_NUMBER, Stack, free_port, wait_for

PATH = "/webhooks/twilio/sms"


@dataclass(frozen=True)
class Signed:
    body: bytes
    headers: dict[str, str]
    sid: str


def signed_inbound(public_url: str, auth_token: str, sender: str, text: str) -> Signed:
    sid = "SM" + uuid.uuid4().hex
    params = {
        "ToCountry": "US",
        "SmsMessageSid": sid,
        "NumMedia": "0",
        "SmsSid": sid,
        "SmsStatus": "received",
        "Body": text,
        "FromCountry": "US",
        "To": CLINIC_NUMBER,
        "NumSegments": "1",
        "MessageSid": sid,
        "AccountSid": "ACaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
        "From": sender,
        "ApiVersion": "2010-04-01",
    }
    signature = RequestValidator(auth_token).compute_signature(public_url + PATH, params)
    return Signed(
        urllib.parse.urlencode(params).encode(),
        {
            "Content-Type": "application/x-www-form-urlencoded; charset=utf-8",
            "X-Twilio-Signature": signature,
            "User-Agent": "TwilioProxy/1.1",
        },
        sid,
    )


class Client:
    """One keep-alive connection to the web app (one per thread)."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)

    def post(self, req: Signed) -> int:
        try:
            self.conn.request("POST", PATH, req.body, req.headers)
            resp = self.conn.getresponse()
            resp.read()
            return resp.status
        except (OSError, http.client.HTTPException):
            self.conn.close()
            self.conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
            return 0

    def close(self) -> None:
        self.conn.close()


def start_web(st: Stack, processes: int | None = None) -> tuple[int, str]:
    """The web app on a free port (`processes` uvicorn processes, or the setting's default);
    returns (port, public URL) once /healthz answers 200."""
    port = free_port()
    public = f"http://127.0.0.1:{port}"
    env = {**st.procs.env, "CHECKIN_PUBLIC_URL": public}
    if processes:
        env["CHECKIN_WEB_WORKERS"] = str(processes)
    st.procs.start("web", ["-m", "worker.cli", "web", "--port", str(port)], env=env)

    def healthy() -> bool:
        st.procs.check_alive()
        try:
            with urllib.request.urlopen(public + "/healthz", timeout=2) as resp:
                return bool(json.loads(resp.read()).get("status") == "ok")
        except OSError:
            return False

    wait_for(healthy, 60, "the web app's /healthz", every=0.2)
    time.sleep(0.2)
    return port, public


# ---------------------------------------------------------------- the load generator


def raw_request(req: Signed, port: int) -> bytes:
    """The whole HTTP/1.1 request, as bytes, ready to write on a keep-alive connection."""
    head = [f"POST {PATH} HTTP/1.1", f"Host: 127.0.0.1:{port}"]
    head += [f"{k}: {v}" for k, v in req.headers.items()]
    head.append(f"Content-Length: {len(req.body)}")
    return ("\r\n".join(head) + "\r\n\r\n").encode() + req.body


#: Why requests failed (no answer), and stale keep-alive connections retried: what → count.
FAILURES: Counter[str] = Counter()
# uvicorn closes a keep-alive connection idle for 5 s; a client must not pick one that old (the
# server may be closing it as the request goes out). Real clients retry such a request once.
IDLE_LIMIT = 2.0


class _Conn:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer
        self.used_at = 0.0

    @classmethod
    async def open(cls, port: int) -> _Conn:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        return cls(reader, writer)

    async def post(self, raw: bytes) -> tuple[int, bool]:
        """(status, whether the connection may be used again)."""
        self.writer.write(raw)
        head = await self.reader.readuntil(b"\r\n\r\n")
        status = int(head[9:12])
        lower = head.lower()
        length = 0
        at = lower.find(b"\r\ncontent-length:")
        if at >= 0:
            end = lower.index(b"\r\n", at + 2)
            length = int(lower[at + 17 : end])
        if length:
            await self.reader.readexactly(length)
        return status, b"\r\nconnection: close" not in lower

    def close(self) -> None:
        self.writer.close()


class _Idle:
    """Idle keep-alive connections, the most recently used first; none older than IDLE_LIMIT."""

    def __init__(self) -> None:
        self.conns: list[_Conn] = []

    def take(self, now: float) -> _Conn | None:
        while self.conns:
            conn = self.conns.pop()
            if now - conn.used_at < IDLE_LIMIT:
                return conn
            conn.close()
        return None

    def give(self, conn: _Conn | None, now: float) -> None:
        if conn is not None:
            conn.used_at = now
            self.conns.append(conn)

    def close(self) -> None:
        for conn in self.conns:
            conn.close()
        self.conns.clear()


_NO_ANSWER = (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, TimeoutError)


async def _timed(port: int, raw: bytes, conn: _Conn | None) -> tuple[int, _Conn | None]:
    """Post on `conn` (or a new connection); no answer is status 0 and no connection back. A
    reused connection the server closed before answering is retried once on a new one (the
    request was not read: Twilio's own client would do the same)."""
    for attempt in (1, 2):
        reused = conn is not None
        try:
            if conn is None:
                conn = await _Conn.open(port)
            status, reusable = await asyncio.wait_for(conn.post(raw), 30)
        except _NO_ANSWER as exc:
            if conn is not None:
                conn.close()
            conn = None
            stale = isinstance(exc, ConnectionResetError | BrokenPipeError) or (
                isinstance(exc, asyncio.IncompleteReadError) and not exc.partial
            )
            if reused and stale and attempt == 1:
                FAILURES["retried: a kept-alive connection closed by the server"] += 1
                continue
            FAILURES[f"{type(exc).__name__}: {exc}"[:120]] += 1
            return 0, None
        if not reusable:
            conn.close()
            return status, None
        return status, conn
    return 0, None


def open_loop_run(
    port: int, reqs: list[Signed], rate: float, max_connections: int = 512
) -> tuple[list[float], list[int], float]:
    """Post `reqs` on a fixed schedule, `rate` per second, whatever the answers: a request is
    sent at its time on an idle keep-alive connection, or a new one (so a slow answer delays
    nobody else's sending, up to `max_connections` at once). Latency is measured from each
    request's scheduled time, so a client falling behind counts against the app, never in its
    favour. Returns (latencies in seconds, statuses: both in the order of the schedule; seconds
    from the first answer to the last)."""
    raws = [raw_request(r, port) for r in reqs]
    return asyncio.run(_open_loop(port, raws, rate, max_connections))


async def _open_loop(
    port: int, raws: list[bytes], rate: float, max_connections: int
) -> tuple[list[float], list[int], float]:
    loop = asyncio.get_running_loop()
    idle = _Idle()
    slots = asyncio.Semaphore(max_connections)
    latencies = [0.0] * len(raws)
    statuses = [0] * len(raws)
    first, last = [float("inf")], [0.0]

    async def one(i: int, raw: bytes, due: float) -> None:
        async with slots:
            status, conn = await _timed(port, raw, idle.take(loop.time()))
            done = loop.time()
            idle.give(conn, done)
        latencies[i] = done - due
        statuses[i] = status
        first[0] = min(first[0], done)
        last[0] = max(last[0], done)

    t0 = loop.time() + 0.2
    tasks = []
    for i, raw in enumerate(raws):
        due = t0 + i / rate
        delay = due - loop.time()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.ensure_future(one(i, raw, due)))
    await asyncio.gather(*tasks)
    idle.close()
    return latencies, statuses, last[0] - first[0]


def closed_loop_run(
    port: int, reqs: list[Signed], connections: int
) -> tuple[list[float], list[int], float]:
    """`connections` keep-alive clients, each posting its next request as soon as the previous
    one is answered. Returns (latencies in seconds, statuses, elapsed seconds)."""
    raws = [raw_request(r, port) for r in reqs]
    return asyncio.run(_closed_loop(port, raws, connections))


async def _closed_loop(
    port: int, raws: list[bytes], connections: int
) -> tuple[list[float], list[int], float]:
    loop = asyncio.get_running_loop()
    it = iter(raws)
    latencies: list[float] = []
    statuses: list[int] = []

    async def client() -> None:
        conn: _Conn | None = None
        for raw in it:
            start = loop.time()
            status, conn = await _timed(port, raw, conn)
            latencies.append(loop.time() - start)
            statuses.append(status)
        if conn is not None:
            conn.close()

    start = loop.time()
    await asyncio.gather(*(client() for _ in range(connections)))
    return latencies, statuses, loop.time() - start
