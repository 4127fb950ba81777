"""The newcomer's path, for real: `checkin db upgrade`, `checkin run`, `checkin demo`, watch a
message go out, Ctrl-C, and nothing left behind.

A fresh working directory and a clean environment (PATH, HOME and nothing else of ours): SQLite
in ./var and the embedded Redis that `checkin run` starts itself. Nobody calls `checkin tick`: the
message is planned by beat, claimed by dispatch, sent by a worker and printed by the console
backend into the run's own output.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.integration.procs import Samples, scrape
from worker.embedded import free_port

pytestmark = [
    pytest.mark.slow,
    pytest.mark.timeout(330),
    pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs Linux /proc"),
]

CHECKIN = Path(sys.prefix) / "bin" / "checkin"
HEALTHY_WITHIN = 60.0
# The demo seeds check-ins 2-4 minutes ahead (minute resolution) and beat ticks every 15 s.
SENT_WITHIN = 200.0
STOPPED_WITHIN = 30.0


# ---------------------------------------------------------------- processes, through /proc


@dataclass(frozen=True)
class Proc:
    pid: int
    start: int  # clock ticks after boot: tells a reused pid apart
    argv: tuple[str, ...]

    @property
    def label(self) -> str:
        return " ".join(self.argv) or f"pid {self.pid}"


def _stat(pid: int) -> tuple[str, int, int] | None:
    """(state, ppid, start time) of a process, or None when there is no such process."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return None
    fields = raw[raw.rindex(")") + 2 :].split()
    return fields[0], int(fields[1]), int(fields[19])


def _argv(pid: int) -> tuple[str, ...]:
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except (FileNotFoundError, ProcessLookupError):
        return ()
    return tuple(p.decode(errors="replace") for p in raw.split(b"\0") if p)


def descendants(root: int) -> set[Proc]:
    """Every process below `root` now (children, grandchildren, ...)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and (st := _stat(int(entry.name))) is not None:
            children.setdefault(st[1], []).append(int(entry.name))
    found: set[Proc] = set()
    todo = list(children.get(root, []))
    while todo:
        pid = todo.pop()
        st = _stat(pid)
        if st is not None:
            found.add(Proc(pid, st[2], _argv(pid)))
            todo.extend(children.get(pid, []))
    return found


def running(proc: Proc) -> bool:
    st = _stat(proc.pid)
    return st is not None and st[2] == proc.start and st[0] != "Z"


def refused(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1):
            return False
    except OSError:
        return True


def free_port_pair() -> int:
    """A port p with p and p + 1 both free, below the kernel's ephemeral range: `checkin run`
    serves the urgent worker's metrics on p and the bulk worker's on p + 1. A port from
    `free_port()` is ephemeral, so p + 1 could be handed meanwhile to any outgoing connection
    (or to the embedded Redis) of this busy suite; below the range nothing is handed out."""
    low = _ephemeral_low() - 2
    for _ in range(200):
        port = random.randrange(20_000, low)
        with contextlib.ExitStack() as held:
            try:
                for p in (port, port + 1):
                    s = held.enter_context(socket.socket())
                    s.bind(("127.0.0.1", p))
            except OSError:
                continue
        return port
    raise AssertionError("no two adjacent free ports below the ephemeral range")


def _ephemeral_low() -> int:
    try:
        return int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768


# ---------------------------------------------------------------- the newcomer


@dataclass
class Newcomer:
    cwd: Path
    env: dict[str, str]

    def checkin(self, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        proc = subprocess.run(
            [str(CHECKIN), *args],
            cwd=self.cwd,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        assert proc.returncode == 0, f"checkin {' '.join(args)}: {proc.stderr}"
        return proc

    def json(self, *args: str) -> Any:
        return json.loads(self.checkin(*args, "--json").stdout)


@pytest.fixture
def newcomer(tmp_path: Path) -> Newcomer:
    home = tmp_path / "home"
    home.mkdir()
    cwd = tmp_path / "clinic"
    cwd.mkdir()
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(home)}
    return Newcomer(cwd, env)


@dataclass
class Run:
    proc: subprocess.Popen[bytes]
    out: Path
    err: Path
    port: int
    seen: set[Proc]

    def output(self) -> str:
        return self.out.read_text(errors="replace") + self.err.read_text(errors="replace")

    def tail(self, lines: int = 40) -> str:
        return "\n".join(self.output().splitlines()[-lines:])

    def record_children(self) -> None:
        self.seen |= descendants(self.proc.pid)

    def scrape(self, port: int) -> Samples:
        """A worker's metrics; if they cannot be read, the run's output says why."""
        try:
            return scrape(port)
        except OSError as exc:
            pytest.fail(f"worker metrics on :{port}: {exc}\n{self.tail(80)}")


@pytest.fixture
def start_run(newcomer: Newcomer) -> Iterator[Callable[..., Run]]:
    """Starts `checkin run` in its own session, as a terminal would; at teardown, kills it if a
    test left it running, together with every process it started (and nothing else)."""
    runs: list[Run] = []

    def start(port: int | None = None, metrics_port: int | None = None) -> Run:
        port = port or free_port()
        metrics = ["--metrics-port", str(metrics_port)] if metrics_port else []
        out, err = newcomer.cwd.parent / "run.out", newcomer.cwd.parent / "run.err"
        with out.open("wb") as stdout, err.open("wb") as stderr:
            proc = subprocess.Popen(
                [str(CHECKIN), "run", "--port", str(port), *metrics],
                cwd=newcomer.cwd,
                env=newcomer.env,
                stdin=subprocess.DEVNULL,
                stdout=stdout,
                stderr=stderr,
                start_new_session=True,
            )
        runs.append(Run(proc, out, err, port, set()))
        return runs[-1]

    yield start
    for r in runs:
        if r.proc.poll() is None:
            r.record_children()
            with contextlib.suppress(ProcessLookupError):
                os.killpg(r.proc.pid, signal.SIGKILL)
            r.proc.wait(10)
        for child in r.seen:  # each child of `checkin run` leads its own session
            if running(child):
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(child.pid, signal.SIGKILL)


def get_health(port: int) -> tuple[int, dict[str, Any]]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read() or b"{}")


def wait_healthy(r: Run) -> float:
    """Seconds until /healthz answered 200 with the database and the broker ok."""
    started = time.monotonic()
    health: tuple[int, dict[str, Any]] | None = None
    while time.monotonic() - started < HEALTHY_WITHIN:
        assert r.proc.poll() is None, f"checkin run exited early:\n{r.tail()}"
        with contextlib.suppress(OSError):
            health = get_health(r.port)
            if health[0] == 200:
                break
        time.sleep(0.25)
    assert health is not None and health[0] == 200, f"not healthy: {health}\n{r.tail()}"
    assert health[1]["database"] == "ok" and health[1]["broker"] == "ok", health
    return time.monotonic() - started


def wait_for_demo_message(
    newcomer: Newcomer, r: Run, patients: dict[str, Any]
) -> tuple[dict[str, Any], float]:
    """The first demo message sent by the running system (and printed by the console backend
    into the run's output), and the seconds until one was planned."""
    demo_at = time.monotonic()
    time_to_planned: float | None = None
    sent: dict[str, Any] | None = None
    out: list[dict[str, Any]] = []
    while time.monotonic() - demo_at < SENT_WITHIN:
        assert r.proc.poll() is None, f"checkin run exited:\n{r.tail()}"
        r.record_children()
        rows = newcomer.json("messages", "list", "--limit", "1000")
        out = [m for m in rows if m["direction"] == "out" and m["patient_id"] in patients]
        if time_to_planned is None and any(m["status"] == "scheduled" for m in out):
            time_to_planned = time.monotonic() - demo_at
        # The demo also seeds four weeks of history (provider ids "demo-..."): not sent here.
        done = [
            m
            for m in out
            if m["status"] in ("sent", "delivered")
            and not (m["provider_id"] or "").startswith("demo-")
        ]
        if done:
            sent = min(done, key=lambda m: m["sent_at"])
            break
        time.sleep(3)
    assert sent is not None, (
        f"no demo message sent within {SENT_WITHIN:.0f} s; statuses: "
        f"{sorted({m['status'] for m in out})}\n{r.tail()}"
    )
    assert time_to_planned is not None
    # The console backend printed it from inside the running system (a worker process).
    assert sent["provider_id"] and sent["provider_id"].startswith("console-"), sent
    deadline = time.monotonic() + 10
    while sent["provider_id"] not in r.output() and time.monotonic() < deadline:
        time.sleep(0.2)
    assert sent["provider_id"] in r.output(), r.tail()
    return sent, time_to_planned


def ctrl_c_stops_everything(r: Run, redis_port: int) -> float:
    """SIGINT to the run's process group, as the terminal sends it; exit status 0 and nothing
    it ever started left running. Returns the seconds it took."""
    r.record_children()
    stop_at = time.monotonic()
    os.killpg(r.proc.pid, signal.SIGINT)
    try:
        code = r.proc.wait(STOPPED_WITHIN)
    except subprocess.TimeoutExpired:
        pytest.fail(f"checkin run still running {STOPPED_WITHIN:.0f} s after SIGINT:\n{r.tail()}")
    time_to_stop = time.monotonic() - stop_at
    assert code == 0, r.tail()
    assert "checkin-worker stopped" in r.output()
    left = [p.label for p in r.seen if running(p)]
    assert left == [], f"left running after Ctrl-C: {left}"
    assert refused(r.port), "the web port still accepts connections"
    assert refused(redis_port), "the embedded Redis still accepts connections"
    return time_to_stop


def embedded_redis_port(r: Run) -> int:
    match = re.search(r"embedded Redis on redis://127\.0\.0\.1:(\d+)/0", r.output())
    assert match, r.tail()
    return int(match[1])


# ---------------------------------------------------------------- the test


def test_newcomer_runs_the_system_sees_a_message_sent_and_ctrl_c_stops_everything(
    newcomer: Newcomer, start_run: Callable[..., Run]
) -> None:
    # 1. The database, in ./var.
    newcomer.checkin("db", "upgrade")
    assert (newcomer.cwd / "var" / "checkin.db").is_file()

    # 2. `checkin run`; healthy within a minute.
    metrics_port = free_port_pair()
    r = start_run(metrics_port=metrics_port)
    time_to_healthy = wait_healthy(r)

    # Everything `checkin run` promises is running, as its own processes.
    r.record_children()
    labels = [p.label for p in r.seen]
    for expected in (
        r"redis-server",
        r"worker\.cli web\b",
        r"worker\.cli worker -Q urgent\b",
        r"worker\.cli worker -Q bulk\b",
        r"worker\.cli beat\b",
    ):
        assert any(re.search(expected, label) for label in labels), (expected, labels)
    redis_port = embedded_redis_port(r)

    # 3. The demo clinic, into the same ./var database.
    demo = newcomer.json("demo")
    patients = {p["id"]: p for p in demo["patients"]}
    assert len(patients) >= 2

    # 4. Planned by beat, then sent by a worker, with nobody calling `checkin tick`.
    demo_at = time.monotonic()
    sent, time_to_planned = wait_for_demo_message(newcomer, r, patients)
    time_to_sent = time.monotonic() - demo_at
    assert get_health(r.port)[0] == 200
    # The workers' own metrics: the bulk worker sent it; the urgent one ran dispatch.
    bulk = r.scrape(metrics_port + 1)
    assert sum(v for (name, _), v in bulk.items() if name == "checkin_sends_total") >= 1, bulk
    urgent = r.scrape(metrics_port)
    assert any(n == "checkin_beat_task_last_run_timestamp_seconds" for n, _ in urgent), urgent

    # 5. Ctrl-C: SIGINT to the run's process group, as the terminal sends it; 6. nothing it
    # started is left.
    time_to_stop = ctrl_c_stops_everything(r, redis_port)

    print(
        f"\nhealthz 200 after {time_to_healthy:.1f} s; demo messages planned after "
        f"{time_to_planned:.1f} s; first sent after {time_to_sent:.1f} s "
        f"(due {sent['due_at']}, sent {sent['sent_at']}); stopped {time_to_stop:.1f} s "
        f"after SIGINT; {len(r.seen)} child processes, none left"
    )


# ---------------------------------------------------------------- supervision

WORKERS = {"urgent": r"worker\.cli worker -Q urgent\b", "bulk": r"worker\.cli worker -Q bulk\b"}
RESTARTED_WITHIN = 60.0
GIVES_UP_WITHIN = 120.0


def test_killed_workers_are_started_again_and_messages_still_go_out(
    newcomer: Newcomer, start_run: Callable[..., Run]
) -> None:
    """Both workers die as a crash would kill them (SIGKILL, no clean shutdown): `checkin run`
    starts them again, and the demo message is then sent by a restarted worker."""
    newcomer.checkin("db", "upgrade")
    r = start_run()
    wait_healthy(r)
    redis_port = embedded_redis_port(r)
    r.record_children()
    killed: dict[str, Proc] = {}
    for queue, pattern in WORKERS.items():
        [victim] = [p for p in r.seen if re.search(pattern, p.label) and running(p)]
        os.kill(victim.pid, signal.SIGKILL)
        killed[queue] = victim

    # Each comes back as a new process with the same command line.
    deadline = time.monotonic() + RESTARTED_WITHIN
    while True:
        assert r.proc.poll() is None, f"checkin run exited:\n{r.tail()}"
        now = descendants(r.proc.pid)
        back = {
            queue: [p for p in now if re.search(pattern, p.label) and p != killed[queue]]
            for queue, pattern in WORKERS.items()
        }
        if all(back.values()):
            break
        assert time.monotonic() < deadline, f"workers not restarted: {back}\n{r.tail()}"
        time.sleep(0.2)
    r.record_children()
    assert not any(running(p) for p in killed.values())
    log = r.output()
    for queue in WORKERS:
        assert re.search(
            rf"worker-{queue} \(pid {killed[queue].pid}\) killed by SIGKILL; restarting it in",
            log,
        ), r.tail()
        assert f"worker-{queue} restarted (pid {back[queue][0].pid})" in log, r.tail()
    assert get_health(r.port)[0] == 200

    # The system still works end to end: beat plans, dispatch claims, a new worker sends.
    demo = newcomer.json("demo")
    patients = {p["id"]: p for p in demo["patients"]}
    wait_for_demo_message(newcomer, r, patients)
    # The restarted workers are still the ones running (nothing kept crashing).
    assert all(running(procs[0]) for procs in back.values())

    ctrl_c_stops_everything(r, redis_port)


def test_a_process_that_keeps_failing_stops_the_run_with_an_error(
    newcomer: Newcomer, start_run: Callable[..., Run]
) -> None:
    """The web app cannot bind its port (something else holds it), so it exits at every start:
    after a few restarts `checkin run` gives up, stops everything else, and exits with 1."""
    newcomer.checkin("db", "upgrade")
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        r = start_run(port=taken.getsockname()[1])
        deadline = time.monotonic() + GIVES_UP_WITHIN
        while r.proc.poll() is None:
            r.record_children()
            if time.monotonic() > deadline:
                pytest.fail(f"still running after {GIVES_UP_WITHIN:.0f} s:\n{r.tail()}")
            time.sleep(0.2)
    assert r.proc.returncode == 1, r.tail()
    log = r.output()
    assert len(re.findall(r"web \(pid \d+\) exited with status \d+; restarting it in", log)) == 4
    assert re.search(r"web \(pid \d+\) exited with status \d+: 5 exits within 60 s, giving up", log)
    assert "checkin-worker stopped" in log
    # Everything else it started (Redis, both workers, beat) was stopped, not left behind.
    labels = [p.label for p in r.seen]
    assert any(re.search(WORKERS["bulk"], label) for label in labels), labels
    left = [p.label for p in r.seen if running(p)]
    assert left == [], f"left running after giving up: {left}"
    assert refused(embedded_redis_port(r))
