"""One check of a patient's details for adding and editing (services/records/patient_details.py):
normalised values, blank meaning none, and errors that name their field."""

from __future__ import annotations

from typing import Any

import pytest

from worker.services.errors import InvalidInput
from worker.services.records.patient_details import Details, check_details

GOOD: dict[str, Any] = {
    "name": "  Ana Ruiz ",
    "tz": "America/New_York",
    "channel": "sms",
    "phone": "(212) 555-0142",
    "email": " Ana@Example.COM ",
    "send_window": " 09:00-20:00 ",
    "language": "es",
}


def test_details_come_back_normalised() -> None:
    assert check_details(**GOOD) == Details(
        name="Ana Ruiz",
        tz="America/New_York",
        channel="sms",
        phone="+12125550142",
        email="Ana@example.com",
        send_window="09:00-20:00",
        language="es",
    )


@pytest.mark.parametrize("blank", [None, "", "   "])
def test_a_blank_contact_or_window_means_none(blank: str | None) -> None:
    d = check_details(**{**GOOD, "channel": "email", "phone": blank, "send_window": blank})
    assert (d.phone, d.send_window) == (None, None)
    d = check_details(**{**GOOD, "email": blank})
    assert d.email is None


@pytest.mark.parametrize(
    ("change", "field", "words"),
    [
        ({"name": "   "}, "name", "name is empty"),
        ({"tz": "Mars/Olympus"}, "tz", "Mars/Olympus"),
        ({"phone": "555-01"}, "phone", "invalid phone number"),
        ({"email": "ana@"}, "email", "invalid email address"),
        ({"channel": "fax"}, "channel", "channel must be one of"),
        ({"language": "fr"}, "language", "language must be one of"),
        ({"phone": "  "}, "phone", "a phone number is required for the sms channel"),
        ({"channel": "email", "email": ""}, "email", "an email address is required"),
        ({"send_window": "20:00-09"}, "send_window", "send window:"),
    ],
)
def test_each_wrong_detail_is_named(change: dict[str, Any], field: str, words: str) -> None:
    with pytest.raises(InvalidInput) as caught:
        check_details(**{**GOOD, **change})
    assert caught.value.field == field
    assert words in str(caught.value)
