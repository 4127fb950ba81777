"""Worker "hosts" for the fault suite: each one a Linux network namespace with its own address,
joined to this machine by a veth pair, running real `checkin worker` processes.

The services (Redis, PostgreSQL, the Twilio emulator, the SMTP server) listen on 127.0.0.1 of
the root namespace, which a namespace cannot reach; a small asyncio forwarder listens on each
link's root-side address (a private /30 that exists only between this machine and that
namespace) and forwards to them. A partition takes the link down (the host's packets go
nowhere, its connections hang, as across a failed switch) and drops the forwarder's
connections for that host, as the far side's own timeouts would over a long partition; healing
brings the link up again. A killed host loses its whole process group (SIGKILL).

Needs root (`ip netns`); `available()` says whether it works here. Everything is removed at the
end, whatever happened: the namespaces and links carry this run's random tag.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import shutil
import signal
import subprocess
import sys
import threading
import uuid
from dataclasses import dataclass, field
from pathlib import Path


def _ip(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["ip", *args], capture_output=True, text=True, timeout=30, check=check)


def available() -> str | None:
    """None when network namespaces can be made here, else why not."""
    if shutil.which("ip") is None:
        return "the `ip` command (iproute2) is not installed"
    if os.geteuid() != 0:
        return "network namespaces need root"
    probe = f"ckprobe{uuid.uuid4().hex[:6]}"
    made = _ip("netns", "add", probe, check=False)
    if made.returncode != 0:
        return f"ip netns add failed: {made.stderr.strip()[:120]}"
    _ip("netns", "del", probe, check=False)
    return None


@dataclass
class Host:
    name: str
    netns: str
    root_if: str
    gateway: str  # the root side of the link: where the forwarder listens for this host
    address: str  # the host's own address
    procs: dict[str, tuple[list[str], subprocess.Popen[bytes]]] = field(default_factory=dict)
    partitioned: bool = False
    killed: bool = False


class _Forwarder:
    """One asyncio loop in a thread: for each host, a listener on its gateway per service port,
    forwarding to 127.0.0.1 on the same port."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="hosts-fwd", daemon=True)
        self.thread.start()
        self.servers: list[asyncio.Server] = []
        self.conns: dict[str, set[asyncio.StreamWriter]] = {}
        self.refusing: set[str] = set()

    def _call(self, coro: object) -> object:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(30)  # type: ignore[arg-type]

    def listen(self, host: str, gateway: str, ports: list[int]) -> None:
        self.conns[host] = set()
        for port in ports:
            self.servers.append(self._call(self._listen(host, gateway, port)))  # type: ignore[arg-type]

    async def _listen(self, host: str, gateway: str, port: int) -> asyncio.Server:
        async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            if host in self.refusing:
                writer.close()
                return
            try:
                up_reader, up_writer = await asyncio.open_connection("127.0.0.1", port)
            except OSError:
                writer.close()
                return
            pair = {writer, up_writer}
            self.conns[host].update(pair)
            try:
                await asyncio.gather(self._pump(reader, up_writer), self._pump(up_reader, writer))
            finally:
                self.conns[host].difference_update(pair)

        return await asyncio.start_server(handle, gateway, port, backlog=256)

    @staticmethod
    async def _pump(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
        try:
            while data := await src.read(65536):
                dst.write(data)
                await dst.drain()
        except (OSError, asyncio.CancelledError):
            pass
        finally:
            with contextlib.suppress(Exception):
                dst.close()

    def drop(self, host: str, *, refuse: bool) -> None:
        async def _drop() -> None:
            if refuse:
                self.refusing.add(host)
            for writer in list(self.conns[host]):
                transport = writer.transport
                transport.abort()  # no FIN handshake: gone, as after a long partition
            self.conns[host].clear()

        self._call(_drop())

    def allow(self, host: str) -> None:
        async def _allow() -> None:
            self.refusing.discard(host)

        self._call(_allow())

    def close(self) -> None:
        async def _close() -> None:
            for server in self.servers:
                server.close()
            for conns in self.conns.values():
                for writer in conns:
                    writer.transport.abort()

        with contextlib.suppress(Exception):
            self._call(_close())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)


class Hosts:
    """Hosts made on demand; use as a context manager (everything is removed on exit)."""

    def __init__(self, workdir: Path, ports: list[int]) -> None:
        self.workdir = workdir
        self.ports = ports
        self.tag = uuid.uuid4().hex[:6]
        # A random private /16 per run, so that parallel runs never share an address.
        self.net = f"10.{random.randint(64, 250)}"
        self.hosts: dict[str, Host] = {}
        self.forwarder = _Forwarder()
        self.restarts: list[str] = []
        self._envs: dict[tuple[str, str], dict[str, str]] = {}
        self._starts: dict[tuple[str, str], int] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._watch = threading.Thread(target=self._supervise, name="hosts-sup", daemon=True)
        self._watch.start()

    def __enter__(self) -> Hosts:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def add(self, name: str) -> Host:
        i = len(self.hosts)
        host = Host(
            name=name,
            netns=f"ck{self.tag}h{i}",
            root_if=f"ck{self.tag}r{i}",
            gateway=f"{self.net}.{i}.1",
            address=f"{self.net}.{i}.2",
        )
        self.hosts[name] = host  # registered first: close() removes whatever was made
        peer = f"ck{self.tag}p{i}"
        _ip("netns", "add", host.netns)
        _ip("link", "add", host.root_if, "type", "veth", "peer", "name", peer)
        _ip("link", "set", peer, "netns", host.netns)
        _ip("addr", "add", f"{host.gateway}/30", "dev", host.root_if)
        _ip("link", "set", host.root_if, "up")
        inside = ["netns", "exec", host.netns, "ip"]
        _ip(*inside, "addr", "add", f"{host.address}/30", "dev", peer)
        _ip(*inside, "link", "set", peer, "up")
        _ip(*inside, "link", "set", "lo", "up")
        self.forwarder.listen(name, host.gateway, self.ports)
        return host

    def start(self, host: Host, service: str, env: dict[str, str], *args: str) -> None:
        """`python -m worker.cli ARGS` inside the host's namespace, in a process group of its
        own; restarted there if it exits by itself (the host's own supervisor)."""
        argv = ["ip", "netns", "exec", host.netns, sys.executable, "-m", "worker.cli", *args]
        with self._lock:
            n = self._starts[(host.name, service)] = self._starts.get((host.name, service), 0) + 1
            log = (self.workdir / f"{host.name}-{service}{f'-{n}' if n > 1 else ''}.log").open("wb")
            proc = subprocess.Popen(
                argv,
                env=env,
                cwd=self.workdir,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
            host.procs[service] = (list(args), proc)
            self._envs[(host.name, service)] = env

    def _supervise(self) -> None:
        while not self._stop.wait(0.5):
            with self._lock:
                dead = [
                    (host, service)
                    for host in self.hosts.values()
                    if not host.killed
                    for service, (_, proc) in host.procs.items()
                    if proc.poll() is not None
                ]
            for host, service in dead:
                code = host.procs[service][1].returncode
                with self._lock:
                    self.restarts.append(f"{host.name}/{service} exited with {code}")
                args = host.procs[service][0]
                self.start(host, service, self._envs[(host.name, service)], *args)

    def kill(self, host: Host) -> None:
        """The host dies: SIGKILL to each of its process groups; nothing restarts it."""
        with self._lock:
            host.killed = True
            procs = [proc for _, proc in host.procs.values()]
        for proc in procs:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(30)

    def revive(self, host: Host) -> None:
        """The host comes back (rebooted): its services start again."""
        with self._lock:
            host.killed = False
            services = [(s, args) for s, (args, _) in host.procs.items()]
        for service, args in services:
            self.start(host, service, self._envs[(host.name, service)], *args)

    def partition(self, host: Host) -> None:
        host.partitioned = True
        _ip("link", "set", host.root_if, "down")
        self.forwarder.drop(host.name, refuse=True)

    def heal(self, host: Host) -> None:
        self.forwarder.allow(host.name)
        _ip("link", "set", host.root_if, "up")
        host.partitioned = False

    def close(self) -> None:
        self._stop.set()
        self._watch.join(5)
        for host in self.hosts.values():
            for _, proc in host.procs.values():
                if proc.poll() is None:
                    with contextlib.suppress(ProcessLookupError):
                        os.killpg(proc.pid, signal.SIGKILL)
                    with contextlib.suppress(subprocess.TimeoutExpired):
                        proc.wait(30)
        self.forwarder.close()
        for host in self.hosts.values():
            _ip("link", "del", host.root_if, check=False)  # deletes its peer too
            _ip("netns", "del", host.netns, check=False)
