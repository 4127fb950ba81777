"""What every benchmark stands on: a fresh database, a redis-server, the Twilio emulator in its
own process, and the project's real processes (`python -m worker.cli worker|beat|web`), all on
this machine; plus readers for a process's peak memory and CPU time."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from worker.embedded import EmbeddedRedis
from worker.store.migrate import upgrade

ROOT = Path(__file__).resolve().parent.parent
CLK_TCK = os.sysconf("SC_CLK_TCK")
CLINIC_NUMBER = "+12125550000"
ONCALL_PHONE = "+12125559911"
DEFAULT_PG = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"


def log(msg: str) -> None:
    sys.stderr.write(f"[bench {time.strftime('%H:%M:%S')}] {msg}\n")
    sys.stderr.flush()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for(predicate: Callable[[], bool], timeout: float, what: str, every: float = 0.1) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(every)
    raise TimeoutError(f"timed out after {timeout:.0f}s waiting for {what}")


# ---------------------------------------------------------------- databases


def pg_admin_url() -> str | None:
    """The PostgreSQL server to create benchmark databases on, or None when none answers."""
    url = (
        os.environ.get("CHECKIN_BENCH_PG_URL")
        or os.environ.get("CHECKIN_TEST_DATABASE_URL")
        or DEFAULT_PG
    )
    # A test URL may carry a search_path option; the benchmark makes whole databases.
    base = make_url(url).difference_update_query(["options"])
    rendered = base.render_as_string(hide_password=False)
    try:
        engine = create_engine(rendered, isolation_level="AUTOCOMMIT")
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
        engine.dispose()
    except Exception:
        return None
    return rendered


@contextlib.contextmanager
def database(kind: str, workdir: Path) -> Iterator[str]:
    """A fresh, migrated database: a SQLite file in `workdir`, or `CREATE DATABASE bench_x` on
    the PostgreSQL server, dropped afterwards."""
    if kind == "sqlite":
        path = workdir / f"bench-{uuid.uuid4().hex[:8]}.db"
        url = f"sqlite:///{path}"
        upgrade(url)
        try:
            yield url
        finally:
            for suffix in ("", "-wal", "-shm"):
                Path(f"{path}{suffix}").unlink(missing_ok=True)
        return
    admin_url = pg_admin_url()
    if admin_url is None:
        raise RuntimeError("no PostgreSQL server answers (set CHECKIN_BENCH_PG_URL)")
    name = f"bench_{uuid.uuid4().hex[:10]}"
    admin = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    url = make_url(admin_url).set(database=name).render_as_string(hide_password=False)
    try:
        upgrade(url)
        yield url
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def postgres_backend_pids(url: str) -> list[int]:
    """Server processes serving `url`'s database now (to read their CPU time)."""
    if not url.startswith("postgresql"):
        return []
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            rows = conn.execute(
                text(
                    "SELECT pid FROM pg_stat_activity WHERE datname = current_database() "
                    "AND pid <> pg_backend_pid()"
                )
            ).all()
        return [int(r[0]) for r in rows]
    finally:
        engine.dispose()


# ---------------------------------------------------------------- /proc readers


def vmhwm_mb(pid: int) -> float | None:
    """Peak resident memory (VmHWM) of a live process, in MB."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024.0
    except OSError:
        return None
    return None


def cpu_seconds(pid: int) -> float | None:
    """User + system CPU time of a live process (its own, not its children's)."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = raw[raw.rindex(")") + 2 :].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def children(pid: int) -> list[int]:
    out: list[int] = []
    with contextlib.suppress(OSError):
        for task in Path(f"/proc/{pid}/task").iterdir():
            with contextlib.suppress(OSError):
                out += [int(c) for c in (task / "children").read_text().split()]
    return out


def tree(pid: int) -> list[int]:
    pids, todo = [], [pid]
    while todo:
        p = todo.pop()
        pids.append(p)
        todo += children(p)
    return pids


# ---------------------------------------------------------------- the emulator


class Accept(NamedTuple):
    arrived: float
    to: str
    answered: float


class Emulator:
    """`python -m bench.emulator` in its own process (so it has its own interpreter and GIL)."""

    def __init__(self, workdir: Path, latency_ms: float = 0.0) -> None:
        self.log_path = workdir / "emulator.log"
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "bench.emulator",
                "--port",
                "0",
                "--latency-ms",
                str(latency_ms),
            ],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=self.log_path.open("wb"),
            start_new_session=True,
        )
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline().decode().strip()
        if not line.startswith("http://"):
            self.close()
            raise RuntimeError(f"the emulator did not start: {self.log_path.read_text()[-500:]}")
        self.base_url = line
        self.account_sid = "ACaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
        self.auth_token = "0123456789abcdef0123456789abcdef"
        self._seen = 0

    @property
    def pid(self) -> int:
        return self.proc.pid

    def _call(self, method: str, path: str, body: Any = None) -> Any:
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(self.base_url + path, data=data, method=method)
        with urllib.request.urlopen(req, timeout=30) as resp:
            return json.loads(resp.read())

    def configure(self, **changes: Any) -> Any:
        return self._call("POST", "/_emulator/config", changes)

    def stats(self) -> dict[str, Any]:
        result: dict[str, Any] = self._call("GET", "/_emulator/stats")
        return result

    def accepted(self) -> int:
        return int(self.stats()["accepted"])

    def accepts(self, since: int = 0) -> list[Accept]:
        """Accepted messages from the `since`-th on: arrival time, recipient, answer time."""
        return [
            Accept(float(a), str(to), float(b))
            for a, to, b in self._call("GET", f"/_emulator/accepts?since={since}")
        ]

    def reset(self) -> None:
        self._call("POST", "/_emulator/reset")

    def close(self) -> None:
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(5)


# ---------------------------------------------------------------- the project's processes


@dataclass
class Proc:
    role: str
    popen: subprocess.Popen[bytes]
    log_path: Path


@dataclass
class Procs:
    """Child processes of one benchmark run; each in its own process group, all stopped at the
    end whatever happened."""

    workdir: Path
    env: dict[str, str]
    running: list[Proc] = field(default_factory=list)

    def start(self, role: str, argv: list[str], env: dict[str, str] | None = None) -> Proc:
        log_path = self.workdir / f"{role}.log"
        popen = subprocess.Popen(
            [sys.executable, *argv],
            env=env or self.env,
            cwd=self.workdir,
            stdout=log_path.open("wb"),
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        proc = Proc(role, popen, log_path)
        self.running.append(proc)
        return proc

    def checkin(self, role: str, *args: str) -> Proc:
        return self.start(role, ["-m", "worker.cli", *args])

    def check_alive(self) -> None:
        for p in self.running:
            if p.popen.poll() is not None:
                tail = p.log_path.read_text(errors="replace")[-2000:]
                raise RuntimeError(f"{p.role} exited with {p.popen.returncode}:\n{tail}")

    def peaks(self) -> dict[str, float]:
        """VmHWM in MB of every process we started, by role (prefork children as role/N)."""
        out: dict[str, float] = {}
        for p in self.running:
            for i, pid in enumerate(tree(p.popen.pid)):
                mb = vmhwm_mb(pid)
                if mb is not None:
                    out[p.role if i == 0 else f"{p.role}/child{i}"] = round(mb, 1)
        return out

    def cpu(self) -> dict[str, float]:
        """CPU seconds used so far by every process we started (children included), by role."""
        out: dict[str, float] = {}
        for p in self.running:
            total = sum(cpu_seconds(pid) or 0.0 for pid in tree(p.popen.pid))
            out[p.role] = round(total, 2)
        return out

    def stop(self) -> None:
        for p in self.running:
            if p.popen.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(p.popen.pid, signal.SIGTERM)
        deadline = time.monotonic() + 15
        for p in self.running:
            try:
                p.popen.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(p.popen.pid, signal.SIGKILL)
                p.popen.wait(5)
        self.running.clear()


def ping_workers(broker_url: str, nodes: int, timeout: float = 90.0) -> None:
    """Wait until `nodes` Celery workers answer a broadcast ping on `broker_url`."""
    from celery import Celery

    app = Celery("bench-ping", broker=broker_url, set_as_current=False)
    try:

        def ready() -> bool:
            return len(app.control.ping(timeout=0.5) or []) >= nodes

        wait_for(ready, timeout, f"{nodes} Celery worker(s) to answer a ping", every=0.3)
    finally:
        app.close()


# ---------------------------------------------------------------- one run's stack


@dataclass
class Stack:
    """A database, a redis-server and an emulator for one run, in a temporary folder."""

    workdir: Path
    db_url: str
    redis: EmbeddedRedis
    emulator: Emulator
    procs: Procs

    @property
    def redis_url(self) -> str:
        return self.redis.url

    def env(self, **extra: str) -> dict[str, str]:
        """The environment of the project's processes: the real SDK against the emulator."""
        env = {
            "PATH": os.environ.get("PATH", ""),
            "HOME": str(self.workdir),
            "PYTHONPATH": str(ROOT),
            "CHECKIN_DATABASE_URL": self.db_url,
            "CHECKIN_BROKER_URL": self.redis.url,
            "CHECKIN_SMS_BACKEND": "twilio",
            "TWILIO_ACCOUNT_SID": self.emulator.account_sid,
            "TWILIO_AUTH_TOKEN": self.emulator.auth_token,
            "TWILIO_FROM_NUMBER": CLINIC_NUMBER,
            "TWILIO_API_URL": self.emulator.base_url,
            "CHECKIN_CLINIC_NAME": "Riverside Pain & Wellness",
            "CHECKIN_CLINIC_PHONE": "+12125550199",
            "CHECKIN_ONCALL_PHONE": ONCALL_PHONE,
            "CHECKIN_API_TOKEN": "bench-token",
            # `checkin web` refuses a non-development configuration without it.
            "CHECKIN_SECRET_KEY": "bench-secret-key-0123456789abcdef",
        }
        env.update(extra)
        return env


@contextlib.contextmanager
def stack(db_kind: str, latency_ms: float = 0.0) -> Iterator[Stack]:
    with tempfile.TemporaryDirectory(prefix="checkin-bench-") as tmp:
        workdir = Path(tmp)
        with database(db_kind, workdir) as url:
            redis = EmbeddedRedis(workdir=workdir).start()
            emulator = Emulator(workdir, latency_ms)
            procs = Procs(workdir, {})
            try:
                yield Stack(workdir, url, redis, emulator, procs)
            finally:
                procs.stop()
                emulator.close()
                redis.stop()
                _keep_logs(workdir)


LOGS = ROOT / "bench" / "results" / "logs"


def _keep_logs(workdir: Path) -> None:
    """The last run's process logs, kept in bench/results/logs/ (git-ignored) for a look."""
    import shutil

    shutil.rmtree(LOGS, ignore_errors=True)
    LOGS.mkdir(parents=True, exist_ok=True)
    for path in workdir.glob("*.log"):
        shutil.copy(path, LOGS / path.name)


def machine_cpu_seconds() -> float:
    """Busy CPU seconds of the whole machine so far (all cores), from /proc/stat."""
    fields = Path("/proc/stat").read_text().splitlines()[0].split()[1:]
    values = [int(v) for v in fields]
    idle = values[3] + values[4]
    return (sum(values[:8]) - idle) / CLK_TCK
