"""The objects a running process shares: settings, sessions, channels, renderer, protocols.

Built once per process by an entry point (CLI command, Celery worker, web app) and passed down;
tests build one with their own channels.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from worker.channels import Channels
from worker.config import Settings
from worker.domain.protocols import Protocol, load_protocols
from worker.rendering import Renderer
from worker.store.db import make_engine, make_session_factory

if TYPE_CHECKING:
    from redis import Redis

    from worker.services.outbound.lease import Lease
    from worker.services.outbound.pacing import Pacer


@dataclass
class Runtime:
    settings: Settings
    engine: Engine
    sessions: sessionmaker[Session]
    channels: Channels
    renderer: Renderer = field(default_factory=Renderer)
    # Pacing's Redis (CHECKIN_REDIS_URL, or the broker when it is Redis); None without one.
    redis: Redis | None = None
    # SMS pacing shared by every process (services/outbound/pacing.py); None: sends are not paced.
    pacer: Pacer | None = None
    # This process's send lease (services/outbound/lease.py); set and started by worker processes only.
    lease: Lease | None = None
    # What the web app reads the time with (session timeouts, throttling); None: the settings'
    # clock (real time, or CHECKIN_CLOCK). Tests inject one to pass 15 idle minutes at once.
    clock: Callable[[], datetime] | None = None

    def now(self) -> datetime:
        return self.clock() if self.clock is not None else self.settings.now()

    @cached_property
    def protocols(self) -> dict[str, Protocol]:
        extra = Path(self.settings.protocols_dir) if self.settings.protocols_dir else None
        return load_protocols(extra)

    @cached_property
    def link_key(self) -> bytes:
        from worker.keys import signing_key

        return signing_key(self.settings, self.sessions)

    @property
    def is_postgres(self) -> bool:
        return self.engine.dialect.name == "postgresql"

    def close(self) -> None:
        self.engine.dispose()
        if self.redis is not None:
            self.redis.close()


def build_runtime(
    settings: Settings, *, channels: Channels | None = None, pool_size: int = 10
) -> Runtime:
    """Build the runtime for `settings`; channels default to the configured backends."""
    if channels is None:
        from worker.channels.factory import build_channels

        channels = build_channels(settings)
    engine = make_engine(
        settings.database_url,
        pool_size=pool_size,
        statement_timeout_ms=settings.db_statement_timeout_ms,
        idle_tx_timeout_ms=settings.db_idle_tx_timeout_ms,
    )
    client, pacer = _broker_clients(settings)
    overrides = Path(settings.templates_dir) if settings.templates_dir else None
    return Runtime(
        settings=settings,
        engine=engine,
        sessions=make_session_factory(engine),
        channels=channels,
        renderer=Renderer(overrides_dir=overrides),
        redis=client,
        pacer=pacer,
    )


def _broker_clients(settings: Settings) -> tuple[Redis | None, Pacer | None]:
    url = settings.effective_redis_url
    if not url:
        return None, None
    from worker.broker import redis_client
    from worker.services.outbound.pacing import Pacer

    # No connection is made here; the pool connects on first use (and again after a fork).
    # Every send thread may ask the pacer at once (plus the task threads): redis-py's default
    # of 100 connections would refuse the rest, and a refused bulk send is deferred for 30 s.
    client = redis_client(
        url,
        socket_timeout=2,
        socket_connect_timeout=2,
        health_check_interval=30,
        max_connections=settings.send_concurrency + 32,
    )
    return client, Pacer.from_settings(client, settings)
