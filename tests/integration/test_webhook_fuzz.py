"""Random and hostile bodies at the inbound webhook: no 500, nothing lost, stored verbatim."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from aiosmtpd.controller import Controller
from checkin_emulator import TwilioEmulator
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.integration.clinic import Clinic, open_clinic
from tests.integration.conftest import CollectingHandler, SmtpServer, free_port

PHONE = "+12125550123"
HOSTILE = [
    "",
    " ",
    "x" * 2000,
    "😀" * 500,
    "\x00\x01\x02\x1b[31m",
    "'; DROP TABLE messages; --",
    "<script>alert(1)</script>",
    "{{ 7*7 }} {% raw %}",
    "STOP\r\nSTART",
    "مرحبا كيف حالك",
    "我今天很好 7",
    "dolor 8 ánimo 2",
    "%s %n %x",
    "\u202eevil",
]


@pytest.fixture(scope="module")
def clinic(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Clinic]:
    from worker.store.migrate import upgrade

    url = f"sqlite:///{tmp_path_factory.mktemp('fuzz') / 'fuzz.db'}"
    upgrade(url)
    with TwilioEmulator() as emulator:
        handler = CollectingHandler()
        port = free_port()
        controller = Controller(
            handler, hostname="127.0.0.1", port=port, server_hostname="localhost"
        )
        controller.start()
        smtp = SmtpServer("127.0.0.1", port, handler, controller)
        c = open_clinic(url, emulator, smtp)
        c.patient(PHONE, "--send-window", "00:00-24:00")
        yield c
        c.close()
        controller.stop()


def post_and_check(clinic: Clinic, body: str) -> None:
    before = len(clinic.inbound())
    response = clinic.text(PHONE, body)
    assert response.status_code == 200, response.text
    rows = clinic.inbound()
    assert len(rows) == before + 1, "nothing lost"
    assert rows[-1].body == body, "stored verbatim"
    assert rows[-1].processed_at is not None, "processed without error"


@pytest.mark.parametrize("body", HOSTILE, ids=range(len(HOSTILE)))
def test_hostile_bodies_are_stored_verbatim(clinic: Clinic, body: str) -> None:
    post_and_check(clinic, body)


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    body=st.text(
        alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00\r"),
        max_size=400,
    )
)
def test_random_bodies_never_break_the_webhook(clinic: Clinic, body: str) -> None:
    post_and_check(clinic, body)
