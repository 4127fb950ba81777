"""Celery's own command line against the module-level app, as Celery users run it:
`celery -A worker.celery_app worker -Q urgent -P threads -c 2`, then `inspect ping` and `report`
from another process. The app reads its settings (broker and all) from the environment."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow


def _celery(env: dict[str, str], cwd: Path, *args: str, timeout: float = 90) -> str:
    # Generous: `celery report` imports the whole app and took 17 s on a loaded 2-core machine.
    done = subprocess.run(
        [sys.executable, "-m", "celery", "-A", "worker.celery_app", *args],
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    return f"exit {done.returncode}\n{done.stdout}{done.stderr}"


@pytest.fixture
def env(tmp_path: Path, redis_url: str) -> dict[str, str]:
    repo = Path(__file__).resolve().parents[2]
    return {
        "PATH": os.environ.get("PATH", ""),
        "HOME": str(tmp_path),
        "PYTHONPATH": str(repo),
        "CHECKIN_DATABASE_URL": f"sqlite:///{tmp_path / 'celery-cli.db'}",
        "CHECKIN_BROKER_URL": redis_url,
        "CHECKIN_CLINIC_NAME": "Riverside Pain & Wellness",
    }


def _start(env: dict[str, str], cwd: Path, argv: list[str]) -> subprocess.Popen[bytes]:
    log = (cwd / "worker.log").open("wb")
    return subprocess.Popen(
        [sys.executable, "-m", *argv],
        env=env,
        cwd=cwd,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )


def _stop(proc: subprocess.Popen[bytes]) -> None:
    os.killpg(proc.pid, 15)
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, 9)
        proc.wait(10)


def _ping(env: dict[str, str], cwd: Path, node: str) -> str:
    deadline = time.monotonic() + 60
    out = ""
    while time.monotonic() < deadline:
        out = _celery(env, cwd, "inspect", "ping", "-d", node, "-t", "1")
        if out.startswith("exit 0") and "pong" in out:
            return out
    log = (cwd / "worker.log").read_text(errors="replace")
    raise AssertionError(f"no pong from {node}:\n{out}\n--- worker log ---\n{log}")


@pytest.fixture
def node(env: dict[str, str], tmp_path: Path) -> Iterator[str]:
    name = f"layout-{uuid.uuid4().hex[:8]}@{socket.gethostname()}"
    argv = ["celery", "-A", "worker.celery_app", "worker", "-Q", "urgent", "-P", "threads"]
    proc = _start(env, tmp_path, [*argv, "-c", "2", "-n", name, "--without-mingle"])
    try:
        yield name
    finally:
        _stop(proc)


def test_celery_inspect_ping_and_report_against_a_running_worker(
    env: dict[str, str], node: str, tmp_path: Path
) -> None:
    out = _ping(env, tmp_path, node)
    assert node in out

    # The worker's registered tasks are the broker names, unchanged (nothing is registered twice).
    registered = _celery(env, tmp_path, "inspect", "registered", "-d", node, "-t", "2")
    for name in ("checkin.send", "checkin.inbound", "checkin.dispatch", "checkin.escalate"):
        assert name in registered, registered

    report = _celery(env, tmp_path, "report")
    assert report.startswith("exit 0"), report
    assert "broker_url" in report
    # The queues come from the settings, read when the app was first configured.
    assert "crisis" in report and "urgent" in report and "bulk" in report


def test_checkin_worker_passes_unknown_options_to_celery(
    env: dict[str, str], tmp_path: Path
) -> None:
    """`-P solo` is not an option of `checkin worker`: it reaches `celery worker` after the
    defaults (`-P threads`) and so overrides them."""
    name = f"layout-{uuid.uuid4().hex[:8]}"
    node = f"{name}@{socket.gethostname()}"
    argv = ["worker.cli", "worker", "-Q", "urgent", "-c", "1", "--name", name, "-P", "solo"]
    proc = _start(env, tmp_path, argv)
    try:
        _ping(env, tmp_path, node)
        stats = _celery(env, tmp_path, "inspect", "stats", "-d", node, "-t", "2")
    finally:
        _stop(proc)
    assert stats.startswith("exit 0"), stats
    assert "celery.concurrency.solo" in stats, stats


def test_a_thread_pool_worker_is_ready_to_send_before_its_first_task(
    env: dict[str, str], tmp_path: Path, redis_url: str
) -> None:
    """The runtime (imports, engine, send lease) is built as the worker starts, so the first
    crisis reply after a restart does not wait for it: the worker's send lease is in Redis
    although no task has been sent to it."""
    import redis

    from worker.services.outbound.lease import KEY

    name = f"warm-{uuid.uuid4().hex[:8]}@{socket.gethostname()}"
    argv = ["celery", "-A", "worker.celery_app", "worker", "-Q", "urgent", "-P", "threads"]
    proc = _start(env, tmp_path, [*argv, "-c", "2", "-n", name, "--without-mingle"])
    client = redis.Redis.from_url(redis_url)
    # A lease's name is host:pid:random (services/outbound/lease.py).
    mine = f"{socket.gethostname()[:30]}:{proc.pid}:".encode()
    leases: list[bytes] = []
    try:
        _ping(env, tmp_path, name)
        deadline = time.monotonic() + 30
        while not leases and time.monotonic() < deadline:
            leases = [m for m in client.zrange(KEY, 0, -1) if m.startswith(mine)]
            time.sleep(0.2)
    finally:
        client.close()
        _stop(proc)
    log = (tmp_path / "worker.log").read_text(errors="replace")
    assert leases, f"no send lease from the worker before any task\n--- worker log ---\n{log}"
