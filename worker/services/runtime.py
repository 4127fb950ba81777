"""The objects a running process shares: settings, sessions, channels, renderer, protocols.

Built once per process by an entry point (CLI command, Celery worker, web app) and passed down;
tests build one with their own channels.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from worker.channels import Channels
from worker.config import Settings
from worker.domain.protocols import Protocol, load_protocols
from worker.rendering import Renderer
from worker.store.db import make_engine, make_session_factory


@dataclass
class Runtime:
    settings: Settings
    engine: Engine
    sessions: sessionmaker[Session]
    channels: Channels
    renderer: Renderer = field(default_factory=Renderer)

    @cached_property
    def protocols(self) -> dict[str, Protocol]:
        extra = Path(self.settings.protocols_dir) if self.settings.protocols_dir else None
        return load_protocols(extra)

    @cached_property
    def link_key(self) -> bytes:
        from worker.services.links import signing_key

        return signing_key(self.settings, self.sessions)

    @property
    def is_postgres(self) -> bool:
        return self.engine.dialect.name == "postgresql"

    def close(self) -> None:
        self.engine.dispose()


def build_runtime(
    settings: Settings, *, channels: Channels | None = None, pool_size: int = 10
) -> Runtime:
    """Build the runtime for `settings`; channels default to the configured backends."""
    if channels is None:
        from worker.channels.factory import build_channels

        channels = build_channels(settings)
    engine = make_engine(settings.database_url, pool_size=pool_size)
    return Runtime(
        settings=settings,
        engine=engine,
        sessions=make_session_factory(engine),
        channels=channels,
    )
