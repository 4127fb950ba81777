"""The Twilio webhook routes as HTTP: what they answer to requests that are not a well-formed
signed webhook, and that a text is stored exactly as sent, whatever characters it holds (the
routes parse the form themselves, ahead of FastAPI's routing: worker/web/webhooks.py)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from checkin_emulator import TwilioEmulator

from tests.integration.clinic import Clinic, open_clinic
from worker.web.webhooks import SMS_PATH, STATUS_PATH


@pytest.fixture
def clinic(sqlite_url: str, twilio_emulator: TwilioEmulator, smtp_server: Any) -> Iterator[Clinic]:
    c = open_clinic(sqlite_url, twilio_emulator, smtp_server)
    yield c
    c.close()


@pytest.mark.parametrize("path", [SMS_PATH, STATUS_PATH])
def test_other_methods_get_405_naming_post(clinic: Clinic, path: str) -> None:
    response = httpx.get(clinic.base_url + path)
    assert response.status_code == 405
    assert response.headers["allow"] == "POST"
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["status"] == 405


def test_a_signed_request_without_a_message_sid_gets_400_and_stores_nothing(
    clinic: Clinic,
) -> None:
    params = {"From": "+12125550123", "To": "+12125550000", "Body": "7"}
    response = clinic.emulator.post_signed(clinic.base_url + SMS_PATH, params)
    assert response.status_code == 400
    assert clinic.inbound() == []


def test_an_unsigned_request_gets_a_403_problem_document(clinic: Clinic) -> None:
    response = httpx.post(clinic.base_url + SMS_PATH, data={"MessageSid": "SMx", "From": "+1"})
    assert response.status_code == 403
    assert response.json() == {
        "type": "about:blank",
        "title": "Forbidden",
        "status": 403,
        "detail": "missing or unverifiable signature",
    }
    assert clinic.inbound() == []


@pytest.mark.parametrize(
    "text",
    ["Ça va, 4 😊", "6 + 3 = 9 & 100% sure", "   ", "", "a;b=c&d%20e+f", "línea\nnueva"],
)
def test_a_text_is_stored_exactly_as_sent(clinic: Clinic, text: str) -> None:
    response = clinic.text("+12125550123", text)
    assert response.status_code == 200
    assert response.text.startswith('<?xml version="1.0" encoding="UTF-8"?><Response>')
    [row] = clinic.inbound()
    assert (row.body, row.from_address) == (text, "+12125550123")


def test_the_signature_covers_the_query_string(clinic: Clinic) -> None:
    url = clinic.base_url + SMS_PATH + "?clinic=north&x=%2F"
    params = {"MessageSid": "SM" + "7" * 32, "From": "+12125550123", "Body": "5"}
    assert clinic.emulator.post_signed(url, params).status_code == 200
    signed_elsewhere = clinic.emulator.sign(clinic.base_url + SMS_PATH, params)
    forged = httpx.post(url, data=params, headers={"X-Twilio-Signature": signed_elsewhere})
    assert forged.status_code == 403
    assert [r.provider_sid for r in clinic.inbound()] == ["SM" + "7" * 32]
