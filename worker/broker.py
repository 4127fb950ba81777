"""The broker (Redis, Redis Sentinel or RabbitMQ) and the Redis that pacing uses.

One place knows the broker's URL forms and how Celery is told about them:

- `redis://[:PASSWORD@]HOST:PORT/DB` (also `rediss://`, `redis+socket://`): the broker, and by
  default pacing's Redis too.
- `sentinel://[:PASSWORD@]HOST:PORT[/DB][;sentinel://HOST:PORT…][?master_name=NAME]`: Redis
  behind Sentinel; every sentinel is listed, `;`-separated (kombu's failover form), the DB on the
  first one; `master_name` (default `mymaster`) is the monitored master's name. The password is
  the master's. Pacing follows the master through the same sentinels.
- `amqp://USER:PASSWORD@HOST:PORT/VHOST` (also `amqps://`): RabbitMQ. The `crisis` and `urgent`
  queues are declared with `x-max-priority` and crisis replies are published at a high priority.
  Pacing then needs its own Redis (CHECKIN_REDIS_URL).

Queue depths are read through kombu's own API (a passive `queue_declare`, which answers with the
number of ready messages on every transport), never from the transport's internal keys.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, unquote, urlencode, urlsplit

from worker.config import Settings

if TYPE_CHECKING:
    from kombu.connection import Connection
    from redis import Redis

#: Celery's queues. `crisis` holds replies the webhook recognised as crisis language; the urgent
#: worker consumes it ahead of `urgent` (`checkin worker -Q urgent` listens to both).
QUEUES = ("crisis", "urgent", "bulk")
#: RabbitMQ priorities (0 to MAX_PRIORITY, higher first) on the crisis and urgent queues.
MAX_PRIORITY = 10
CRISIS_PRIORITY = 9
DEFAULT_MASTER = "mymaster"


def split_url(url: str) -> tuple[str, dict[str, str]]:
    """A sentinel URL without its `?master_name=…` (ours, not kombu's), and the options; any
    other URL unchanged (rediss:// carries kombu's own `ssl_cert_reqs` there)."""
    base, sep, query = url.partition("?")
    if not sep or not url.startswith("sentinel://"):
        return url, {}
    options = dict(parse_qsl(query))
    rest = urlencode([(k, v) for k, v in parse_qsl(query) if k != "master_name"])
    return (f"{base}?{rest}" if rest else base), options


# Seconds. Bounds on every blocking broker call outside the workers' consuming loop.
BROKER_SOCKET_TIMEOUT = 10.0
BROKER_CONNECT_TIMEOUT = 5.0


def transport_options(settings: Settings) -> dict[str, Any]:
    """Celery's `broker_transport_options` for the configured broker."""
    options: dict[str, Any] = {
        # Redis: unacknowledged tasks (a killed worker's) come back after this. Nothing is ever
        # scheduled far ahead (DESIGN.md), so it can be short; the database also re-sends rows
        # stuck in `queued` on its own (see services/outbound/dispatch.stale_queued). RabbitMQ needs no
        # such timer: it redelivers when the worker's connection drops.
        "visibility_timeout": settings.broker_visibility_timeout,
    }
    if settings.broker_kind == "sentinel" and settings.broker_url:
        _, query = split_url(settings.broker_url)
        options["master_name"] = query.get("master_name", DEFAULT_MASTER)
    if settings.broker_kind in ("redis", "sentinel"):
        # kombu's default is to wait forever: a publish (a webhook handing a reply to the
        # workers, dispatch handing out sends) on a broker that vanished without closing the
        # connection would hold its thread for good. The workers' BRPOP is not affected: kombu's
        # event loop applies no socket timeout there and checks BRPOP's health itself.
        options["socket_timeout"] = BROKER_SOCKET_TIMEOUT
        options["socket_connect_timeout"] = BROKER_CONNECT_TIMEOUT
    elif settings.broker_kind == "amqp":
        # py-amqp's writes (publishes) likewise wait forever on a blocked or dead connection;
        # reads are left to AMQP heartbeats, which the worker's event loop drives.
        options["write_timeout"] = BROKER_SOCKET_TIMEOUT
    return options


def kombu_url(settings: Settings) -> str:
    if not settings.broker_url:
        raise ValueError("CHECKIN_BROKER_URL is not set (checkin run starts an embedded Redis)")
    return split_url(settings.broker_url)[0]


def queue_arguments(settings: Settings, queue: str) -> dict[str, Any] | None:
    if settings.broker_kind == "amqp" and queue in ("crisis", "urgent"):
        return {"x-max-priority": MAX_PRIORITY}
    return None


def inbound_options(settings: Settings, *, crisis: bool) -> dict[str, Any]:
    """Where a reply's `checkin.inbound` task goes: crisis language on its own queue (and at a
    high priority on RabbitMQ), so a burst of routine replies never delays it."""
    if not crisis:
        return {"queue": "urgent", "routing_key": "urgent"}
    options: dict[str, Any] = {"queue": "crisis", "routing_key": "crisis"}
    if settings.broker_kind == "amqp":
        options["priority"] = CRISIS_PRIORITY
    return options


def connection(settings: Settings, timeout: float = 1.0) -> Connection:
    """A kombu connection to the broker (not yet connected), with short timeouts."""
    from kombu.connection import Connection

    options = {**transport_options(settings), "socket_timeout": timeout}
    options["socket_connect_timeout"] = timeout
    conn: Connection = Connection(  # type: ignore[no-untyped-call]
        kombu_url(settings), connect_timeout=timeout, transport_options=options
    )
    return conn


def _connect(conn: Connection) -> None:
    # One retry at once, not after kombu's default 2 s pause: /healthz and the metrics scrape
    # must answer quickly when the broker is down (a load balancer's probe times out at 1-2 s).
    conn.ensure_connection(max_retries=1, interval_start=0, interval_step=0)  # type: ignore[no-untyped-call]


def check(settings: Settings) -> None:
    """Raise when the broker does not answer."""
    with connection(settings) as conn:
        _connect(conn)


def queue_depths(settings: Settings) -> dict[str, int]:
    """Messages waiting in each Celery queue (ready, not yet handed to a worker), read through
    the broker's own API. A queue never declared counts 0. Raises when the broker is down."""
    with connection(settings) as conn:
        _connect(conn)
        not_found = _not_found_errors(conn)
        depths: dict[str, int] = {}
        channel = conn.channel()
        try:
            for queue in QUEUES:
                try:
                    ok = channel.queue_declare(queue=queue, passive=True)
                    depths[queue] = int(ok.message_count)
                except not_found:
                    depths[queue] = 0
                    channel.close()
                    channel = conn.channel()  # RabbitMQ closes a channel after a NOT_FOUND
        finally:
            channel.close()
        return depths


def _not_found_errors(conn: Connection) -> tuple[type[BaseException], ...]:
    from kombu.exceptions import ChannelError

    # RabbitMQ's NOT_FOUND is one of py-amqp's channel errors; kombu's virtual transports
    # (Redis) raise kombu's own ChannelError.
    return (ChannelError, *conn.channel_errors)


def redis_client(url: str, **kwargs: Any) -> Redis:
    """A Redis client for `url`: redis:// (and friends), or sentinel:// following the master.
    No connection is made here; the pool connects on first use (and again after a fork)."""
    import redis
    from redis.sentinel import Sentinel

    base, query = split_url(url)
    parts = [urlsplit(p) for p in base.split(";")]
    if parts[0].scheme != "sentinel":
        return redis.Redis.from_url(url, **kwargs)
    first = parts[0]
    db = int(first.path.strip("/") or 0)
    password = unquote(first.password) if first.password else None
    sentinels = [(p.hostname or "127.0.0.1", p.port or 26379) for p in parts]
    timeouts: dict[str, Any] = {
        k: kwargs[k] for k in ("socket_timeout", "socket_connect_timeout") if k in kwargs
    }
    sentinel = Sentinel(sentinels, sentinel_kwargs=timeouts, **timeouts)
    master: Redis = sentinel.master_for(
        query.get("master_name", DEFAULT_MASTER), db=db, password=password, **kwargs
    )
    return master
