"""The fault-injection harness: a whole clinic on real parts, a fault injected mid-run, and an
account kept at the provider.

One `FaultRun` is one run: its own redis-server (stopped and started again on the same port,
with or without its data), its own SQLite file or PostgreSQL schema (optionally behind a TCP
proxy that can be cut), the Twilio emulator, an SMTP server and the web app in this process
(replies go through the `checkin.inbound` task, as in production), and beat, a bulk worker and
an urgent worker as real child processes.

The run: 2,000 patients with a check-in due now; 20 more whose check-in falls due two minutes
later and who text STOP before it goes; 180 of the 2,000 reply to their check-in once it has
arrived (150 answers, 20 STOPs, 10 crisis texts): 200 inbound texts. Texts are delivered as
Twilio delivers them to the webhook URL docs/runbook.md gives: signed, and not retried after an error
answer. A supervisor restarts any process that dies on its own (compose's `restart:
unless-stopped`) and counts it as a crash.

The account is kept at the emulator, from what it accepted, by recipient and kind of message
(check-in, acknowledgement, crisis reply, STOP confirmation, page), against what each recipient
must get exactly once: expected, sent (expected and accepted), duplicates (accepted beyond
that), lost (expected, never accepted), late (accepted more than `late_after` after it fell due
or after the text it answers; reported, not failed), opt-out violations, crisis replies and
pages. The database is checked against it: every accepted sid held by exactly one row, no row
left queued, sending or unknown, and every answer stored as a response.
"""

from __future__ import annotations

import contextlib
import email.utils
import io
import itertools
import signal
import socket
import subprocess
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from checkin_emulator import TwilioEmulator
from sqlalchemy import func, select
from sqlalchemy.engine import make_url

from tests.conftest import make_settings
from tests.integration.clinic import CLINIC_NUMBER, ONCALL_EMAIL, ONCALL_PHONE, Clinic, open_clinic
from tests.integration.procs import Procs, base_env
from worker.channels import Channels
from worker.channels.console import ConsoleEmail, ConsoleSms
from worker.embedded import free_port, redis_binary
from worker.services.clinical.crisis import REPAGE_EVERY
from worker.services.outbound.plan import plan
from worker.services.records.patients import add_patient
from worker.services.records.schedules import add_schedule
from worker.services.runtime import Runtime, build_runtime
from worker.store.db import session_scope
from worker.store.models import InboundMessage, Message, Response

ZONE = "America/New_York"

#: A message accepted later than this after it fell due (or after the text it answers) is late.
LATE_AFTER = timedelta(seconds=60)
#: A message accepted this long after a STOP was processed was decided after it, whatever was in
#: flight (the provider timeout, 2 s in the suite, plus a second for timestamps in whole seconds).
IN_FLIGHT = timedelta(seconds=4)

ANSWER, CRISIS, STOP = "7", "I want to end my life", "STOP"

#: One line per finished run, printed together at the end of the session (see conftest.py).
SUMMARY: list[str] = []
#: Rows a crash can catch mid-send, and rows not yet settled.
OPEN_AT_KILL = ("queued", "sending", "unknown")
NOT_SETTLED = ("scheduled", *OPEN_AT_KILL)

# What the patient-facing messages start with (after "<clinic>: "), to classify what the
# provider accepted by its body alone.
KINDS = (
    ("checkin", "How has your mood been"),
    ("ack", "Thank you, we got your answer"),
    ("crisis", "We told our care team"),
    ("stop", "You will get no more text messages"),
    ("page", "Urgent follow-up waiting"),
    ("clarify", "Sorry, we could not read that"),
    ("help", "Msg frequency varies"),
)


def kind_of(body: str) -> str:
    for kind, marker in KINDS:
        if marker in body:
            return kind
    return "other"


def phone(i: int) -> str:
    # Clear of the clinic's numbers (+12125550000, +12125550199, +12125559911).
    return f"+1212555{2000 + i:04d}"


# -- real servers the faults act on ------------------------------------------------------------


class RedisServer:
    """A redis-server child on a fixed loopback port that can be stopped and started again.
    `persist`: an append-only file in `workdir`, so data survives a restart; otherwise nothing
    is kept (`--save ""`) and a restart comes back empty."""

    def __init__(self, workdir: Path, *, persist: bool) -> None:
        self.workdir, self.persist = workdir, persist
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None
        workdir.mkdir(parents=True, exist_ok=True)

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> RedisServer:
        argv = [redis_binary(), "--port", str(self.port), "--bind", "127.0.0.1"]
        argv += ["--dir", str(self.workdir), "--save", "", "--loglevel", "warning"]
        argv += ["--appendonly", "yes" if self.persist else "no", "--appendfsync", "always"]
        self.proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, start_new_session=True)
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            assert self.proc.poll() is None, f"redis-server exited with {self.proc.returncode}"
            with (
                contextlib.suppress(OSError),
                socket.create_connection(("127.0.0.1", self.port), timeout=0.5) as s,
            ):
                s.sendall(b"PING\r\n")
                if s.recv(16).startswith(b"+PONG"):
                    return self
            time.sleep(0.05)
        raise AssertionError("redis-server did not answer")

    def stop(self) -> None:
        """Stop as an operator would (SIGTERM: an append-only file is flushed first)."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self.proc = None


class TcpProxy:
    """A TCP proxy on loopback in front of PostgreSQL. `cut()` drops every connection through it
    and refuses new ones (each is accepted and closed at once) until `restore()`: the database
    is unreachable for everything that uses the proxy, and the machine's server is untouched."""

    def __init__(self, host: str, port: int) -> None:
        self.upstream = (host, port)
        self.listener = socket.create_server(("127.0.0.1", 0), backlog=256)
        self.listener.settimeout(0.2)
        self.port = int(self.listener.getsockname()[1])
        self._lock = threading.Lock()
        self._open: set[socket.socket] = set()
        self._cut = threading.Event()
        self._closed = threading.Event()
        self.refused = 0
        self._thread = threading.Thread(target=self._accept, name="pg-proxy", daemon=True)
        self._thread.start()

    def url_for(self, url: str) -> str:
        """`url` (a PostgreSQL URL) pointed at the proxy instead."""
        u = make_url(url)
        return u.set(host="127.0.0.1", port=self.port).render_as_string(hide_password=False)

    def cut(self) -> None:
        self._cut.set()
        with self._lock:
            conns, self._open = list(self._open), set()
        for conn in conns:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)
            conn.close()

    def restore(self) -> None:
        self._cut.clear()

    def close(self) -> None:
        self._closed.set()
        self.cut()
        self._thread.join(5)
        self.listener.close()

    def _accept(self) -> None:
        while not self._closed.is_set():
            try:
                client, _ = self.listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            if self._cut.is_set():
                self.refused += 1
                client.close()
                continue
            try:
                upstream = socket.create_connection(self.upstream, timeout=5)
            except OSError:
                client.close()
                continue
            upstream.settimeout(None)
            client.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            upstream.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            with self._lock:
                self._open.update((client, upstream))
            for src, dst in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(src, dst), daemon=True).start()

    def _pump(self, src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(65536):
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                with contextlib.suppress(OSError):
                    s.shutdown(socket.SHUT_RDWR)
            with self._lock:
                self._open.discard(src)
                self._open.discard(dst)


# -- what patients do ----------------------------------------------------------------------------


@dataclass
class Text:
    """One inbound SMS: its MessageSid, and when the first delivery of it was made."""

    body: str
    sid: str = field(default_factory=lambda: "SM" + uuid.uuid4().hex)
    posted_at: datetime | None = None


@dataclass
class Patient:
    i: int
    phone: str
    role: str  # "plain", "answer", "crisis", "stop", "early_stop", "ooo_stop", "ooo_crisis"
    texts: list[Text] = field(default_factory=list)
    #: The patient's check-ins' due instants (one for most runs, several in the DST runs).
    due: list[datetime] = field(default_factory=list)
    #: Reply after this many of their check-ins have been accepted (0: at the start).
    reply_after: int = 1
    replied: bool = False
    #: Their schedule, when not one check-in at the minute of `due[0]`.
    rrule: str | None = None
    start: date | None = None
    until: date | None = None


@dataclass
class Tally:
    fault: str
    expected: int = 0
    sent: int = 0
    duplicates: int = 0
    lost: int = 0
    late: int = 0
    unexpected: int = 0
    crisis_sent: int = 0
    crisis_expected: int = 0
    pages_sent: int = 0
    pages_expected: int = 0
    optout_violations: int = 0
    unrecorded: int = 0
    early: int = 0
    answers_recorded: int = 0
    answers_expected: int = 0
    stuck: dict[str, int] = field(default_factory=dict)
    details: list[str] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)

    def line(self) -> str:
        parts = [
            f"fault={self.fault}",
            f"expected={self.expected}",
            f"sent={self.sent}",
            f"duplicates={self.duplicates}",
            f"lost={self.lost}",
            f"late={self.late}",
            f"early={self.early}",
            f"crisis_replies={self.crisis_sent}/{self.crisis_expected}",
            f"pages={self.pages_sent}/{self.pages_expected}",
            f"answers={self.answers_recorded}/{self.answers_expected}",
            f"optout_violations={self.optout_violations}",
            f"unexpected={self.unexpected}",
            f"unrecorded={self.unrecorded}",
        ]
        if self.stuck:
            parts.append("stuck=" + ",".join(f"{k}:{v}" for k, v in sorted(self.stuck.items())))
        parts += [f"{k}={v}" for k, v in self.extra.items()]
        return " ".join(parts)

    def assert_pass(self) -> None:
        problems = [
            name
            for name, bad in (
                ("lost", self.lost),
                ("sent before they were due", self.early),
                ("duplicates", self.duplicates),
                ("optout_violations", self.optout_violations),
                ("unexpected messages", self.unexpected),
                ("crisis replies missing", self.crisis_expected - self.crisis_sent),
                ("pages missing", self.pages_expected - self.pages_sent),
                ("answers not recorded", self.answers_expected - self.answers_recorded),
                ("accepted but recorded on no row", self.unrecorded),
                ("rows not in a final state", sum(self.stuck.values())),
            )
            if bad
        ]
        assert not problems, f"{self.fault}: {', '.join(problems)}\n{self.line()}\n" + "\n".join(
            self.details[:40]
        )


# -- one run ---------------------------------------------------------------------------------


class FaultRun:
    """One run of the whole system under one fault. Use as a context manager; everything it
    started is stopped at the end, whatever happened."""

    def __init__(
        self,
        fault: str,
        tmp_path: Path,
        db_url: str,
        *,
        redis_persist: bool = False,
        proxy_db: bool = False,
        clock: str | None = None,
        latency_ms: float = 40.0,
        late_after: timedelta = LATE_AFTER,
        env: dict[str, str] | None = None,
        emulator_clock: Callable[[], datetime] | None = None,
    ) -> None:
        self.fault = fault
        self.emulator_clock = emulator_clock
        self.tmp = tmp_path
        self.direct_url = db_url  # what the harness reads with: never through the proxy
        self.redis = RedisServer(tmp_path / "redis", persist=redis_persist)
        self.proxy: TcpProxy | None = None
        if proxy_db:
            u = make_url(db_url)
            self.proxy = TcpProxy(u.host or "127.0.0.1", u.port or 5432)
        # What the system under test uses: through the proxy when there is one.
        self.app_url = self.proxy.url_for(db_url) if self.proxy else db_url
        self.clock_spec = clock
        self.clock: Callable[[], datetime] = (
            make_settings(db_url, clock=clock).now if clock else _real_now
        )
        self.latency_ms = latency_ms
        self.late_after = late_after
        self.extra_env = env or {}
        #: Every inbound text is delivered twice (same MessageSid), some at once, some later.
        self.duplicate_webhooks = False
        self.patients: list[Patient] = []
        self.n_due = 0
        self.procs = Procs({}, tmp_path)
        #: The running processes by service (urgent, bulk, beat1, ...): argv and process.
        self.services: dict[str, tuple[tuple[str, ...], subprocess.Popen[bytes]]] = {}
        self._services_lock = threading.Lock()
        self.crashes: list[str] = []
        self._threads: list[threading.Thread] = []
        self.emulator: TwilioEmulator | None = None
        self.clinic: Clinic | None = None
        self.smtp: _Smtp | None = None
        self.rt: Runtime | None = None
        self.t0: datetime | None = None  # when beat started: nothing can go before it
        self._stop = threading.Event()
        self._reply_errors: list[str] = []
        self.started = time.monotonic()
        self.timeline: list[str] = []
        #: Seconds from a workers' restart until the rows the kill caught open were settled.
        self.recovery: dict[str, float] = {}

    # -- lifecycle -----------------------------------------------------------------------------

    def __enter__(self) -> FaultRun:
        try:
            self._open()
        except BaseException:
            self.close()
            raise
        return self

    def _open(self) -> None:
        from aiosmtpd.controller import Controller

        from tests.integration.conftest import CollectingHandler

        self.redis.start()
        clock = self.emulator_clock or (self.clock if self.clock_spec else None)
        self.emulator = TwilioEmulator(clock=clock).start()
        self.emulator.configure(latency_ms=self.latency_ms)
        handler = CollectingHandler()
        port = free_port()
        controller = Controller(
            handler, hostname="127.0.0.1", port=port, server_hostname="localhost"
        )
        controller.start()
        self.smtp = _Smtp("127.0.0.1", port, handler, controller)
        overrides = {"CHECKIN_BROKER_URL": self.redis.url}
        if self.clock_spec:
            overrides["CHECKIN_CLOCK"] = self.clock_spec
        self.clinic = open_clinic(self.app_url, self.emulator, self.smtp, celery=True, **overrides)
        self.rt = build_runtime(
            make_settings(self.direct_url),
            channels=Channels(ConsoleSms(io.StringIO()), ConsoleEmail(io.StringIO())),
        )
        self.procs.env = self.worker_env()

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(30)
        self.procs.close()
        for thing in (self.clinic, self.smtp, self.emulator):
            if thing is not None:
                with contextlib.suppress(Exception):
                    thing.close() if isinstance(thing, Clinic) else thing.stop()
        if self.rt is not None:
            self.rt.close()
        self.redis.stop()
        if self.proxy is not None:
            self.proxy.close()

    def worker_env(self) -> dict[str, str]:
        assert self.emulator is not None and self.clinic is not None and self.smtp is not None
        env = {
            **base_env(self.tmp, self.app_url, self.redis.url, self.emulator),
            "CHECKIN_PUBLIC_URL": self.clinic.base_url,
            "CHECKIN_CLINIC_PHONE": "+12125550199",
            "CHECKIN_ONCALL_PHONE": ONCALL_PHONE,
            "CHECKIN_ONCALL_EMAIL": ONCALL_EMAIL,
            "CHECKIN_EMAIL_BACKEND": "smtp",
            "CHECKIN_SMTP_HOST": self.smtp.host,
            "CHECKIN_SMTP_PORT": str(self.smtp.port),
            "CHECKIN_EMAIL_FROM": "checkins@clinic.example",
            "CHECKIN_API_TOKEN": "test-token-123",
            "CHECKIN_SEND_CONCURRENCY": "8",
            # Recovery and retry timing, shortened so that a run takes a minute or two.
            "CHECKIN_REQUEUE_AFTER_SECONDS": "10",
            "CHECKIN_SENDING_STALE_SECONDS": "15",
            "CHECKIN_BROKER_VISIBILITY_TIMEOUT": "30",
            "CHECKIN_RETRY_BACKOFF_SECONDS": "2",
            "CHECKIN_RECONCILE_SETTLE_SECONDS": "3",
            # Pacing stays on (its Redis calls are part of every send) but never holds one up.
            "CHECKIN_SMS_RATE": "1000",
        }
        if self.clock_spec:
            env["CHECKIN_CLOCK"] = self.clock_spec
        env.update(self.extra_env)
        return env

    def note(self, what: str) -> None:
        self.timeline.append(f"{time.monotonic() - self.started:6.1f}s {what}")

    # -- the clinic ------------------------------------------------------------------------------

    def seed(self, n_due: int = 2000, *, out_of_order: bool = False) -> None:
        """`n_due` patients with a check-in due a minute ago; 20 whose check-in falls due about
        two minutes later and who text STOP first; 180 of the `n_due` reply once theirs has
        arrived: 150 answers, 10 crisis texts, 20 STOPs. With `out_of_order`, 20 of those who
        answer also send a STOP or a crisis text after it, delivered before it."""
        now = self.clock()
        tz = ZoneInfo(ZONE)
        due = (now - timedelta(minutes=1)).astimezone(tz).replace(second=0, microsecond=0)
        later = (now + timedelta(seconds=135)).astimezone(tz).replace(second=0, microsecond=0)
        roles = itertools.cycle(["answer"] * 15 + ["crisis"] + ["stop"] * 2)
        ooo = itertools.cycle(["ooo_stop", "ooo_crisis"])
        self.n_due = n_due
        responders = 0
        for i in range(n_due):
            role = "plain"
            if i % 11 == 5 and responders < 180:
                role = next(roles)
                if out_of_order and role == "answer" and responders % 9 == 0:
                    role = next(ooo)
                responders += 1
            p = Patient(i, phone(i), role, due=[due.astimezone(UTC)])
            p.texts = [Text(t) for t in TEXTS[role]]
            self.patients.append(p)
        for i in range(n_due, n_due + 20):
            p = Patient(i, phone(i), "early_stop", due=[later.astimezone(UTC)], reply_after=0)
            p.texts = [Text(STOP)]
            self.patients.append(p)
        for p in self.patients:
            local = p.due[0].astimezone(tz)
            p.rrule = f"FREQ=DAILY;BYHOUR={local.hour};BYMINUTE={local.minute}"
            p.start, p.until = date(2020, 1, 1), local.date()
        self._add_patients(now)

    def seed_night(
        self, n: int, rrule: str, night: date, due: list[datetime], n_crisis: int = 10
    ) -> None:
        """`n` patients on one night's schedule (`rrule`, patient-local, for `night` only) whose
        check-ins must fall due at exactly the instants `due`; each replies once, after one of
        their check-ins (an answer, or for `n_crisis` of them a crisis text)."""
        self.n_due = n * len(due)
        for i in range(n):
            role = "crisis" if i % (n // n_crisis) == 3 else "answer"
            p = Patient(i, phone(i), role, due=list(due), reply_after=1 + i % (len(due) - 1))
            p.texts = [Text(t) for t in TEXTS[role]]
            p.rrule, p.start, p.until = rrule, night, night
            self.patients.append(p)
        self._add_patients(self.clock())

    def _add_patients(self, now: datetime) -> None:
        assert self.rt is not None
        created = now - timedelta(hours=1)
        with session_scope(self.rt.sessions) as session:
            for p in self.patients:
                row = add_patient(
                    session,
                    now=created,
                    name=f"P{p.i}",
                    tz=ZONE,
                    channel="sms",
                    phone=p.phone,
                    consent=["sms"],
                    confirm_optin=False,  # no opt-in text: not what this test counts
                    send_window="00:00-24:00",
                )
                assert p.rrule is not None and p.start is not None
                add_schedule(
                    session,
                    row.id,
                    now=created,
                    instrument="mood",
                    rrule=p.rrule,
                    start=p.start,
                    until=p.until,
                )
        planned = plan(self.rt, now)
        expected = sum(len(p.due) for p in self.patients)
        assert planned == expected, f"planned {planned} rows, expected {expected}"
        self.note(f"seeded {len(self.patients)} patients, {planned} rows")

    # -- processes -------------------------------------------------------------------------------

    def start_worker(self, queue: str, name: str) -> None:
        concurrency = "4" if queue == "urgent" else "2"
        self._spawn(queue, name, "worker", "-Q", queue, "-c", concurrency, "--name", name)

    def start_beat(self, name: str = "beat") -> None:
        self._spawn(name, name, "beat", "--schedule-file", str(self.tmp / f"{name}-schedule"))

    def _spawn(self, service: str, name: str, *args: str) -> None:
        with self._services_lock:
            self.services[service] = (args, self.procs.start(*args, log=f"{name}.log"))
        self.note(f"{name} started")

    def start(self, beats: int = 1, *, workers: bool = True) -> None:
        """Workers and beat(s), then the early STOPs (their check-ins fall due two minutes
        later), then replies as check-ins arrive. A supervisor restarts any process that exits
        on its own, as compose's `restart: unless-stopped` does in production; each such exit is
        counted as a crash. `workers=False`: the caller runs the workers (tests/faults/hosts.py)."""
        if workers:
            self.start_worker("urgent", "urgent")
            self.start_worker("bulk", "bulk")
        self.t0 = self.clock()
        for n in range(beats):
            self.start_beat(f"beat{n + 1}")
        self.send_early_stops()
        for target, name in ((self._reply_loop, "replies"), (self._supervise, "supervisor")):
            thread = threading.Thread(target=target, name=name, daemon=True)
            thread.start()
            self._threads.append(thread)

    def restart_worker(self, queue: str, name: str, sig: int = signal.SIGKILL) -> None:
        with self._services_lock:
            _args, proc = self.services.pop(queue)
        self.procs.kill(proc, sig)
        self.note(f"{queue} worker killed ({signal.Signals(sig).name})")
        self.start_worker(queue, name)

    def restart_workers_watching_recovery(self) -> None:
        """Kill both workers (SIGKILL) and start them again, then time, from the restart, how
        long until every row of each queue that the kill caught open (queued, sending,
        unknown) is settled: `recovery_urgent_s` and `recovery_bulk_s` in the summary line."""
        self.restart_worker("bulk", "bulk2")
        self.restart_worker("urgent", "urgent2")
        caught = self._open_by_priority()
        self.note(
            "open at the kill: "
            + ", ".join(f"{prio} {len(ids)}" for prio, ids in sorted(caught.items()))
        )
        thread = threading.Thread(
            target=self._watch_recovery, args=(caught, time.monotonic()), daemon=True
        )
        thread.start()
        self._threads.append(thread)

    def _open_by_priority(self, statuses: tuple[str, ...] = OPEN_AT_KILL) -> dict[str, set[int]]:
        assert self.rt is not None
        with session_scope(self.rt.sessions) as session:
            rows = session.execute(
                select(Message.id, Message.priority).where(Message.status.in_(statuses))
            ).all()
        out: dict[str, set[int]] = {"urgent": set(), "bulk": set()}
        for mid, prio in rows:
            out["urgent" if prio == "urgent" else "bulk"].add(mid)
        return out

    def _watch_recovery(self, caught: dict[str, set[int]], restarted: float) -> None:
        while len(self.recovery) < len(caught) and not self._stop.is_set():
            still = self._open_by_priority(NOT_SETTLED)
            for prio, ids in caught.items():
                if prio not in self.recovery and not ids & still[prio]:
                    self.recovery[prio] = round(time.monotonic() - restarted, 1)
                    self.note(f"{prio} rows open at the kill all settled")
            time.sleep(0.5)

    def _supervise(self) -> None:
        while not self._stop.wait(0.5):
            with self._services_lock:
                dead = [(k, a, p) for k, (a, p) in self.services.items() if p.poll() is not None]
                for service, args, proc in dead:
                    self.crashes.append(f"{service} exited with {proc.returncode}")
                    self.note(f"{service} exited by itself ({proc.returncode}): restarted")
                    restarted = f"{service}-r{len(self.crashes)}"
                    self.services[service] = (args, self.procs.start(*args, log=f"{restarted}.log"))

    def send_early_stops(self) -> None:
        early = [p for p in self.patients if p.role == "early_stop"]
        if not early:
            return
        with ThreadPoolExecutor(8) as pool:
            list(pool.map(self.deliver_texts, early))
        for p in early:
            p.replied = True
        sids = [t.sid for p in early for t in p.texts]
        wait_for(
            lambda: all(self.processed(sid) for sid in sids), 90, "the early STOPs to be processed"
        )
        self.note("early STOPs processed")

    # -- replies -------------------------------------------------------------------------------

    def deliver_texts(self, p: Patient) -> None:
        """A patient's texts as Twilio delivers them: in order, or for the `ooo_` roles the
        second first, processed, and then the first."""
        if p.role.startswith("ooo_"):
            first, second = p.texts
            self._deliver(p, second)
            wait_for(lambda: self.processed(second.sid), 180, "the later text to be processed")
            self._deliver(p, first)
            return
        for text in p.texts:
            self._deliver(p, text)

    def _deliver(self, p: Patient, text: Text) -> None:
        if not self.duplicate_webhooks:
            self._post(p, text)
        elif int(text.sid[-1], 16) % 2:
            # Twice at the same moment: the two requests race to store the same MessageSid.
            with ThreadPoolExecutor(2) as pool:
                list(pool.map(lambda _: self._post(p, text), range(2)))
        else:
            self._post(p, text)
            time.sleep(0.5 + int(text.sid[-2], 16) / 8)
            self._post(p, text)

    def _post(self, p: Patient, text: Text) -> None:
        """One delivery as Twilio makes it to the webhook URL docs/runbook.md gives (no connection
        overrides): one more try when the connection cannot be made, none after an error
        answer. A text the web app did not take is lost, as it would be."""
        assert self.emulator is not None and self.clinic is not None
        for attempt in (1, 2):
            if text.posted_at is None:
                text.posted_at = self.clock()
            try:
                response = self.emulator.send_inbound(
                    f"{self.clinic.base_url}/webhooks/twilio/sms",
                    p.phone,
                    text.body,
                    to=CLINIC_NUMBER,
                    message_sid=text.sid,
                )
            except OSError as exc:
                refused = isinstance(getattr(exc, "reason", exc), ConnectionRefusedError)
                if refused and attempt == 1:
                    continue
                outcome = type(exc).__name__
            else:
                if response.status_code == 200:
                    return
                outcome = f"HTTP {response.status_code}"
            self._reply_errors.append(f"{p.phone}: the webhook failed ({outcome}): text lost")
            return

    def _reply_loop(self) -> None:
        pending = [p for p in self.patients if p.texts and not p.replied]
        with ThreadPoolExecutor(8, thread_name_prefix="reply") as pool:
            while pending and not self._stop.is_set():
                arrived = self.checkins_by_phone()
                ready = [p for p in pending if arrived[p.phone] >= p.reply_after]
                for p in ready:
                    p.replied = True
                    pending.remove(p)
                    pool.submit(self._safely, p)
                self._stop.wait(0.3)

    def _safely(self, p: Patient) -> None:
        try:
            self.deliver_texts(p)
        except Exception as exc:  # reported with the tally rather than lost in a thread
            self._reply_errors.append(f"{p.phone}: {type(exc).__name__}: {exc}")

    # -- watching --------------------------------------------------------------------------------

    def messages(self) -> list[dict[str, Any]]:
        assert self.emulator is not None
        return self.emulator.messages

    def checkins_by_phone(self) -> Counter[str]:
        return Counter(m["to"] for m in self.messages() if kind_of(m["body"]) == "checkin")

    def accepted(self) -> int:
        assert self.emulator is not None
        return int(self.emulator.stats()["accepted"])

    def count_kind(self, kind: str) -> int:
        return sum(1 for m in self.messages() if kind_of(m["body"]) == kind)

    def _scalar(self, stmt: Any) -> int:
        assert self.rt is not None
        with session_scope(self.rt.sessions) as session:
            return int(session.scalar(stmt) or 0)

    def processed(self, sid: str) -> bool:
        return bool(
            self._scalar(
                select(func.count()).where(
                    InboundMessage.provider_sid == sid, InboundMessage.processed_at.is_not(None)
                )
            )
        )

    def unprocessed_inbound(self) -> int:
        return self._scalar(select(func.count()).where(InboundMessage.processed_at.is_(None)))

    def open_rows(self) -> Counter[str]:
        """Rows not in a final state: due and not sent yet, or in the middle of a send."""
        assert self.rt is not None
        now = self.clock()
        with session_scope(self.rt.sessions) as session:
            rows = session.execute(
                select(Message.status, func.count())
                .where(
                    Message.status.in_(("queued", "sending", "unknown"))
                    | ((Message.status == "scheduled") & (Message.due_at <= now))
                )
                .group_by(Message.status)
            ).all()
        return Counter({s: n for s, n in rows})

    def wait_accepted(self, fraction: float, timeout: float = 120) -> None:
        """Wait until `fraction` of the due check-ins have been accepted: the fault goes here."""
        target = int(self.n_due * fraction)
        wait_for(lambda: self.accepted() >= target, timeout, f"{target} messages accepted")
        self.note(f"{self.accepted()} accepted")

    def finish(self, timeout: float = 300) -> Tally:
        """Wait until every expected message went and nothing is left open, then a quiet spell
        (anything still in flight would show up), and count at a settled moment."""

        progress = [time.monotonic()]

        def done() -> bool:
            if time.monotonic() - progress[0] >= 10:
                progress[0] = time.monotonic()
                self.note(f"{self.accepted()} accepted; open rows {dict(self.open_rows())}")
            if any(p.texts and not p.replied for p in self.patients):
                return False
            if self._reply_errors and not self.open_rows():
                return True  # texts were lost at the webhook: what they asked for never comes
            tally = self.tally(final=False)
            return (
                tally.lost == 0
                and not self.open_rows()
                and self.unprocessed_inbound() == 0
                and not self._threads[0].is_alive()  # every reply delivered
            )

        try:
            wait_for(done, timeout, "every expected message to be sent")
        except AssertionError:
            self._stop.set()
            tally = self.tally()
            tally.details.insert(
                0, f"TIMED OUT after {timeout}s; open rows: {dict(self.open_rows())}"
            )
            tally.details += self.timeline + self.log_tails()
            SUMMARY.append(tally.line() + " TIMED-OUT")
            print("\n" + tally.line())
            raise AssertionError("\n".join([tally.line(), *tally.details])) from None
        self.note("everything expected was accepted")
        time.sleep(3)
        self._stop.set()
        tally = self.settled_tally()
        tally.extra["seconds"] = round(time.monotonic() - self.started)
        for prio in ("urgent", "bulk"):
            if prio in self.recovery:
                tally.extra[f"recovery_{prio}_s"] = self.recovery[prio]
        SUMMARY.append(tally.line())
        print("\n" + "\n".join(self.timeline) + "\n" + tally.line())
        return tally

    def settled_tally(self, timeout: float = 60) -> Tally:
        """The final count, taken while nothing moves: no row open, and no row written, no row
        moved and nothing accepted at the provider while it was taken.

        The system is not always quiet at the end: a follow-up nobody acknowledges is paged
        again at every escalation beat (its SMS and e-mail pages are rows sent there and then),
        and under the rehearsal clock the repage interval passes between two beats, so a count
        taken at an arbitrary instant can catch a beat's pages queued or mid-send, and the one
        the provider has just accepted not yet recorded. Only a moment with nothing open tells
        a stuck row from one in flight; a stuck row never lets one come, and after `timeout`
        the last count (with its open rows) is the result."""
        deadline = time.monotonic() + timeout
        while True:
            before = self._mark()
            tally = self.tally()
            if (not before[1] and before == self._mark()) or time.monotonic() > deadline:
                return tally
            self.note(f"count taken again: open rows {dict(before[1])} while it was taken")
            time.sleep(0.5)

    def _mark(self) -> tuple[int, tuple[tuple[str, int], ...], int]:
        """Where the run stands: the last row written, the open rows by state, and how many
        messages the provider has accepted."""
        last = self._scalar(select(func.max(Message.id)))
        return last, tuple(sorted(self.open_rows().items())), self.accepted()

    def log_tails(self, lines: int = 12) -> list[str]:
        out: list[str] = []
        for log in sorted(self.tmp.glob("*.log")):
            text = log.read_text(errors="replace").splitlines()
            errors = sum(1 for t in text if "ERROR" in t or "Traceback" in t)
            out.append(f"--- {log.name}: {errors} error lines; the last {lines}:")
            out += text[-lines:]
        return out

    # -- the account -------------------------------------------------------------------------------

    def expectations(
        self,
    ) -> tuple[Counter[tuple[str, str]], dict[tuple[str, str], list[datetime]]]:
        """Exactly what each recipient must get (by number and kind), and when each fell due."""
        expect: Counter[tuple[str, str]] = Counter()
        due: dict[tuple[str, str], list[datetime]] = {}
        floor = self.t0 or datetime.min.replace(tzinfo=UTC)
        for p in self.patients:
            if p.role != "early_stop":
                expect[p.phone, "checkin"] += len(p.due)
                due.setdefault((p.phone, "checkin"), []).extend(max(d, floor) for d in p.due)
            posted = [t.posted_at for t in p.texts if t.posted_at is not None]
            for kind in REPLIES[p.role]:
                expect[p.phone, kind] += 1
                if posted:
                    due.setdefault((p.phone, kind), []).append(min(posted))
            if p.role in ("crisis", "ooo_crisis"):
                expect[ONCALL_PHONE, "page"] += 1
        return expect, due

    def tally(self, *, final: bool = True) -> Tally:
        t = Tally(self.fault)
        expect, due = self.expectations()
        messages = self.messages()
        got: dict[tuple[str, str], list[datetime]] = {}
        for m in messages:
            at = email.utils.parsedate_to_datetime(m["date_created"])
            got.setdefault((m["to"], kind_of(m["body"])), []).append(at)
        t.expected = sum(n for key, n in expect.items() if key != (ONCALL_PHONE, "page"))
        pages = self._count_pages(messages, expect.pop((ONCALL_PHONE, "page"), 0), t, final)
        t.expected += t.pages_expected
        t.sent += min(t.pages_sent, t.pages_expected)
        t.lost += max(0, t.pages_expected - t.pages_sent)
        got.pop((ONCALL_PHONE, "page"), None)
        t.extra["repages"] = pages
        late_kinds: Counter[str] = Counter()
        for key, n in expect.items():
            times = sorted(got.get(key, []))
            t.sent += min(n, len(times))
            t.lost += max(0, n - len(times))
            t.duplicates += max(0, len(times) - n)
            if final and len(times) != n:
                t.details.append(f"{key}: expected {n}, accepted {len(times)}")
            for at, was_due in zip(times, sorted(due.get(key, [])), strict=False):
                if at - was_due > self.late_after:
                    t.late += 1
                    late_kinds[key[1]] += 1
                # Timestamps at the provider are whole seconds.
                if at < was_due - timedelta(seconds=1):
                    t.early += 1
                    if final:
                        t.details.append(f"{key}: accepted {at}, before it was due ({was_due})")
        for key, times in got.items():
            if key not in expect:
                t.unexpected += len(times)
                if final:
                    t.details.append(f"{key}: not expected, accepted {len(times)}")
        if late_kinds:
            t.extra["late_by_kind"] = ",".join(f"{k}:{n}" for k, n in sorted(late_kinds.items()))
        t.crisis_expected = sum(n for (_, k), n in expect.items() if k == "crisis")
        t.crisis_sent = sum(
            min(n, len(got.get((ph, k), []))) for (ph, k), n in expect.items() if k == "crisis"
        )
        if not final:
            return t
        answers = [x for p in self.patients for x in p.texts if x.body == ANSWER]
        t.answers_expected = len(answers)
        t.answers_recorded = self._scalar(
            select(func.count(func.distinct(InboundMessage.id)))
            .join(Response, Response.inbound_id == InboundMessage.id)
            .where(InboundMessage.provider_sid.in_([a.sid for a in answers]))
        )
        t.optout_violations = self._optout_violations(messages, t)
        t.unrecorded = self._unrecorded(messages, t)
        t.stuck = dict(self.open_rows())
        assert self.smtp is not None and self.emulator is not None
        t.extra["mail_pages"] = sum(
            1 for m in self.smtp.handler.received if ONCALL_EMAIL in m.rcpt_tos
        )
        stats = self.emulator.stats()
        t.extra["injected_errors"] = sum(stats["injected"].values())
        t.extra["timeouts_after_accept"] = stats["timeouts_after_accept"]
        t.extra["crashes"] = len(self.crashes)
        t.extra["reconciled"] = self._scalar(
            select(func.count()).where(Message.status_reason == "reconciled")
        )
        if self._reply_errors:
            t.details += self._reply_errors
            t.unexpected += len(self._reply_errors)
        return t

    def _count_pages(
        self, messages: list[dict[str, Any]], expected: int, t: Tally, final: bool
    ) -> int:
        """Pages to the on-call phone: one per urgent follow-up (each names its own link), and
        re-pages of one still unacknowledged every REPAGE_EVERY (the on-call is the last rung of
        the escalation ladder here: no backup, no admin); a page sooner than that is a
        duplicate. Returns the re-pages."""
        by_link: dict[str, list[datetime]] = {}
        for m in messages:
            if m["to"] == ONCALL_PHONE and kind_of(m["body"]) == "page":
                at = email.utils.parsedate_to_datetime(m["date_created"])
                by_link.setdefault(m["body"], []).append(at)
        t.pages_expected = expected
        t.pages_sent = len(by_link)
        repages = 0
        for link, times in by_link.items():
            times.sort()
            too_soon = sum(
                1
                for a, b in itertools.pairwise(times)
                if b - a < REPAGE_EVERY - timedelta(seconds=1)
            )
            extra = too_soon
            t.duplicates += extra
            repages += len(times) - 1
            if final and extra:
                t.details.append(f"page {link[-12:]}: {len(times)} pages at {times}")
        t.duplicates += max(0, len(by_link) - expected)
        return repages

    def _optout_violations(self, messages: list[dict[str, Any]], t: Tally) -> int:
        """Messages to a patient after their STOP was processed, other than the confirmation
        itself and a crisis reply (which goes whatever the consent): any whose row was written
        after the STOP, and any accepted later than what could have been in flight then."""
        assert self.rt is not None
        with session_scope(self.rt.sessions) as session:
            stops = session.execute(
                select(InboundMessage.from_address, func.min(InboundMessage.processed_at))
                .where(InboundMessage.outcome.like("%opt_out%"))
                .group_by(InboundMessage.from_address)
            ).all()
            written = dict(
                session.execute(
                    select(Message.provider_id, Message.created_at).where(
                        Message.provider_id.is_not(None)
                    )
                ).all()
            )
        stopped = {ph: at for ph, at in stops if at is not None}
        violations = 0
        for m in messages:
            at_stop = stopped.get(m["to"])
            kind = kind_of(m["body"])
            if at_stop is None or kind in ("stop", "crisis", "help"):
                continue
            accepted = email.utils.parsedate_to_datetime(m["date_created"])
            created = written.get(m["sid"])
            if accepted > at_stop + IN_FLIGHT or (created is not None and created > at_stop):
                violations += 1
                t.details.append(
                    f"{m['to']}: {kind} written {created}, accepted {accepted}; STOP at {at_stop}"
                )
        return violations

    def _unrecorded(self, messages: list[dict[str, Any]], t: Tally) -> int:
        """Accepted messages whose sid no row holds (sent twice, or behind the rows' back), sids
        held by two rows, and rows that say sent without a sid the provider knows."""
        assert self.rt is not None
        with session_scope(self.rt.sessions) as session:
            recorded = Counter(
                session.scalars(
                    select(Message.provider_id).where(
                        Message.channel == "sms", Message.provider_id.is_not(None)
                    )
                )
            )
            no_sid = session.scalar(
                select(func.count()).where(
                    Message.channel == "sms",
                    Message.status.in_(("sent", "delivered")),
                    Message.provider_id.is_(None),
                )
            )
        sids = {m["sid"] for m in messages}
        missing = [m["sid"] for m in messages if m["sid"] not in recorded]
        shared = [sid for sid, n in recorded.items() if n > 1]
        phantom = [sid for sid in recorded if sid not in sids]
        for label, items in (("no row", missing), ("two rows", shared), ("unknown sid", phantom)):
            if items:
                t.details.append(f"provider sids with {label}: {len(items)}")
        if no_sid:
            t.details.append(f"rows sent without a provider sid: {no_sid}")
        return len(missing) + len(shared) + len(phantom) + int(no_sid or 0)


#: What each kind of patient texts, in the order they write it.
TEXTS: dict[str, list[str]] = {
    "plain": [],
    "answer": [ANSWER],
    "crisis": [CRISIS],
    "stop": [STOP],
    "early_stop": [STOP],
    "ooo_stop": [ANSWER, STOP],
    "ooo_crisis": [ANSWER, CRISIS],
}

#: The replies each kind of patient must get, exactly once each.
REPLIES: dict[str, list[str]] = {
    "plain": [],
    "answer": ["ack"],
    "crisis": ["crisis"],
    "stop": ["stop"],
    "early_stop": ["stop"],
    # The STOP arrives (and is processed) before the answer: the answer is stored, and gets no
    # acknowledgement, since the patient has opted out by then.
    "ooo_stop": ["stop"],
    "ooo_crisis": ["crisis", "ack"],
}


@dataclass
class _Smtp:
    host: str
    port: int
    handler: Any
    controller: Any

    def stop(self) -> None:
        self.controller.stop()


def _real_now() -> datetime:
    return datetime.now(UTC)


def wait_for(predicate: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.5)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")
