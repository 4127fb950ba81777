"""The provider request's form body (worker/channels/twilio_http.py) is byte for byte what the
SDK's default client (requests: urlencode with quote_plus) would send, now that ASCII text is
encoded with one str.translate: Twilio signs and parses these bytes, so "nearly the same" is a
wrong body."""

from __future__ import annotations

from urllib.parse import parse_qsl, quote_plus, urlencode

import pytest

from worker.channels.twilio_http import _form

CASES = [
    {"To": "+15555550101", "From": "+15555550100", "Body": "Riverside: how is your pain today?"},
    {
        "Body": "Reply 0-10. STOP to opt out.",
        "StatusCallback": "https://clinic.example/webhooks/twilio/status?x=1&y=2",
    },
    {"Body": "Hola María, ¿cómo está? Responda STOP para salir. ñ € 😀 ‘quotes’"},
    {"Body": "tabs\tand\nnewlines\r\n and ~_.- kept, %25 and + and = and & escaped"},
    {"Body": "".join(chr(c) for c in range(128))},
    {"MediaUrl": ["https://a.example/1.png", "https://a.example/2 3.png"], "Skipped": None},
    {"ValidityPeriod": 600, "SendAsMms": True, "Bytes": b"caf\xc3\xa9"},
    {},
]


def _as_requests_does(values: dict[str, object]) -> str:
    pairs: list[tuple[str, str]] = []
    for key, value in values.items():
        items = value if isinstance(value, list) else [value]
        for v in items:
            if v is not None:
                pairs.append((key, v.decode() if isinstance(v, bytes) else str(v)))
    return urlencode(pairs, quote_via=quote_plus)


@pytest.mark.parametrize("values", CASES)
def test_the_form_body_is_urlencode_with_quote_plus(values: dict[str, object]) -> None:
    assert _form(values) == _as_requests_does(values)


def test_the_form_body_reads_back_as_the_values() -> None:
    values = CASES[2] | CASES[3]
    assert dict(parse_qsl(_form(values), keep_blank_values=True)) == values
