"""worker/broker.py without a broker: URL forms, transport options, queue arguments and where a
reply's task goes; and the urgent worker's queue list."""

from __future__ import annotations

import pytest

from tests.conftest import make_settings
from worker import broker
from worker.cli import with_crisis

AMQP = "amqp://u:p@rabbit:5672/clinic"
SENTINEL = "sentinel://:pw@s1:26379/2;sentinel://s2:26380?master_name=checkin"


def test_a_sentinel_url_gives_kombu_its_own_form_and_the_master_name() -> None:
    s = make_settings("sqlite://", broker_url=SENTINEL)
    assert broker.kombu_url(s) == "sentinel://:pw@s1:26379/2;sentinel://s2:26380"
    assert broker.transport_options(s)["master_name"] == "checkin"
    default = make_settings("sqlite://", broker_url="sentinel://s1:26379")
    assert broker.transport_options(default)["master_name"] == broker.DEFAULT_MASTER


def test_a_redis_url_is_passed_unchanged() -> None:
    s = make_settings("sqlite://", broker_url="redis://r:6379/3?ssl_cert_reqs=none")
    assert broker.kombu_url(s) == "redis://r:6379/3?ssl_cert_reqs=none"
    assert "master_name" not in broker.transport_options(s)


@pytest.mark.parametrize(
    ("url", "crisis", "urgent", "bulk"),
    [
        (AMQP, {"x-max-priority": 10}, {"x-max-priority": 10}, None),
        ("redis://r:6379/0", None, None, None),
    ],
)
def test_priorities_are_declared_on_rabbitmq_only(
    url: str, crisis: object, urgent: object, bulk: object
) -> None:
    s = make_settings("sqlite://", broker_url=url, redis_url="redis://r")
    assert [broker.queue_arguments(s, q) for q in broker.QUEUES] == [crisis, urgent, bulk]


def test_a_crisis_reply_goes_on_its_own_queue_and_at_a_high_priority_on_rabbitmq() -> None:
    amqp = make_settings("sqlite://", broker_url=AMQP, redis_url="redis://r")
    redis = make_settings("sqlite://", broker_url="redis://r:6379/0")
    assert broker.inbound_options(amqp, crisis=True) == {
        "queue": "crisis",
        "routing_key": "crisis",
        "priority": broker.CRISIS_PRIORITY,
    }
    assert broker.inbound_options(redis, crisis=True) == {
        "queue": "crisis",
        "routing_key": "crisis",
    }
    for s in (amqp, redis):
        assert broker.inbound_options(s, crisis=False) == {
            "queue": "urgent",
            "routing_key": "urgent",
        }


@pytest.mark.parametrize(
    ("given", "consumed"),
    [
        ("urgent", "crisis,urgent"),
        ("urgent,bulk", "crisis,urgent,bulk"),
        ("bulk", "bulk"),
        ("urgent,crisis", "urgent,crisis"),
        (" bulk , urgent ", "crisis,bulk,urgent"),
    ],
)
def test_a_worker_on_urgent_also_reads_crisis_first(given: str, consumed: str) -> None:
    assert with_crisis(given) == consumed


def test_a_publish_to_a_broker_that_never_answers_fails_within_a_bound() -> None:
    # A Redis that accepts the connection and then says nothing (a failover, a dropped NAT
    # entry): kombu's default would wait forever, holding the web or worker thread.
    import socket
    from concurrent.futures import ThreadPoolExecutor

    from kombu.exceptions import OperationalError

    from worker.celery_app import create_celery

    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(16)
        port = silent.getsockname()[1]
        app = create_celery(make_settings("sqlite://", broker_url=f"redis://127.0.0.1:{port}/0"))
        options = app.conf.broker_transport_options
        assert options["socket_timeout"] == broker.BROKER_SOCKET_TIMEOUT
        with ThreadPoolExecutor(1) as pool:
            future = pool.submit(app.send_task, "checkin.plan", retry=False)
            # Far beyond the 10 s socket timeout: still running by then, it was not bounded.
            error = future.exception(timeout=60)
    assert isinstance(error, OperationalError) and "Timeout" in str(error)


def test_rabbitmq_publishes_are_bounded_too() -> None:
    options = broker.transport_options(make_settings("sqlite://", broker_url=AMQP, sms_rate=0))
    assert options["write_timeout"] == broker.BROKER_SOCKET_TIMEOUT
