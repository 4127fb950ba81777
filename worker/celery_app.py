"""The Celery application: `worker.celery_app:app`, configured from Settings on first use.

Queues: `crisis` (replies the webhook recognised as crisis language), `urgent` (other replies,
pages, STOP/HELP answers, acknowledgements, dispatch) and `bulk` (check-ins and reminders,
planning). Run a worker on `urgent` (it listens to `crisis` too) and one on `bulk` so urgent work
never waits behind a bulk backlog, nor a crisis reply behind a burst of routine ones.
The broker may be Redis, Redis Sentinel or RabbitMQ (worker/broker.py). Reliability settings: late acknowledgement with reject-on-worker-lost, so
a task in hand when a worker dies is redelivered; prefetch 1, so a worker never hoards; no result
backend (the database row is the result); JSON only.
"""

from __future__ import annotations

from typing import Any

from celery import Celery
from kombu.entity import Queue

from worker import broker as brokers
from worker.broker import QUEUES
from worker.config import Settings

__all__ = [
    "QUEUES",
    "RECOVER_SECONDS",
    "app",
    "app_settings",
    "celery_config",
    "create_celery",
    "send_task_options",
    "use_settings",
]

#: How often beat runs the crash recovery pass (at most every tick).
RECOVER_SECONDS = 3.0


def celery_config(settings: Settings) -> dict[str, Any]:
    """The Celery configuration for these settings (broker, queues, routes, beat schedule)."""
    tick = float(settings.tick_seconds)
    return dict(
        broker_url=brokers.kombu_url(settings),
        task_serializer="json",
        accept_content=["json"],
        result_backend=None,
        task_ignore_result=True,
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,
        worker_hijack_root_logger=False,
        # The console channel writes to stdout on purpose; do not turn that into log lines.
        worker_redirect_stdouts=False,
        worker_cancel_long_running_tasks_on_connection_loss=True,
        broker_connection_retry_on_startup=True,
        broker_transport_options=brokers.transport_options(settings),
        task_queues=[
            Queue(q, routing_key=q, queue_arguments=brokers.queue_arguments(settings, q))  # type: ignore[no-untyped-call]
            for q in QUEUES
        ],
        task_default_queue="bulk",
        task_routes={
            "checkin.plan": {"queue": "bulk"},
            "checkin.dispatch": {"queue": "urgent"},
            "checkin.recover": {"queue": "urgent"},
            "checkin.send": {"queue": "bulk"},
            "checkin.inbound": {"queue": "urgent"},
            "checkin.inbound_unstored": {"queue": "urgent"},
            "checkin.escalate": {"queue": "urgent"},
        },
        beat_schedule={
            "plan": {"task": "checkin.plan", "schedule": tick, "options": {"expires": tick * 4}},
            "dispatch": {
                "task": "checkin.dispatch",
                "schedule": tick,
                "options": {"expires": tick * 2},
            },
            # Recovery after a crash (services/outbound/dispatch.recover) every few seconds, not once a
            # tick: a crisis reply caught mid-send by a dying worker goes within seconds.
            "recover": {
                "task": "checkin.recover",
                "schedule": min(tick, RECOVER_SECONDS),
                "options": {"expires": min(tick, RECOVER_SECONDS) * 2},
            },
            "escalate": {
                "task": "checkin.escalate",
                "schedule": max(tick, 30.0),
                "options": {"expires": max(tick, 30.0) * 2},
            },
        },
        timezone="UTC",
        enable_utc=True,
    )


def create_celery(settings: Settings, broker_url: str | None = None) -> Celery:
    """A separate app for these settings, for a process that only sends tasks by name (the web
    app's inbound hand-off, tests); the worker and beat run the module-level `app`."""
    if broker_url:
        settings = settings.model_copy(update={"broker_url": broker_url})
    client = Celery("checkin", set_as_current=False)
    client.conf.update(celery_config(settings))
    return client


# ---------------------------------------------------------------- the app Celery's tools load

_settings: Settings | None = None


def app_settings() -> Settings:
    """The settings the module-level app and its tasks use: those an entry point handed over
    (`use_settings`), else the environment's, read on first use rather than at import."""
    global _settings
    if _settings is None:
        from worker.config import load_settings

        _settings = load_settings()
    return _settings


def use_settings(settings: Settings) -> None:
    """Run the module-level app with these settings (`checkin worker` and `checkin beat`); call
    before the app's configuration is first read."""
    global _settings
    _settings = settings


#: `celery -A worker.celery_app worker|beat|inspect|report|events|purge` and Flower load this.
#: Nothing is read at import: the configuration is computed from the settings on first use, and
#: the tasks (worker/tasks.py) are imported by the worker when it starts (`include`).
app = Celery("checkin", set_as_current=False, include=["worker.tasks"])
app.add_defaults(lambda: celery_config(app_settings()))


def send_task_options(settings: Settings, queue: str) -> dict[str, Any]:
    # argsrepr hides the ids from Celery events (and so from Flower); they name no patient, but
    # the fewer places that list them, the better.
    return {
        "queue": queue,
        "routing_key": queue,
        "expires": settings.send_task_expires_seconds,
        "argsrepr": "(…)",
        "kwargsrepr": "{}",
    }
