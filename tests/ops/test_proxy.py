"""Webhook signatures behind a reverse proxy: Twilio signs the public URL it was given; the app
is reached at an internal address and port, and checks the signature against
CHECKIN_PUBLIC_URL + the path it received, never against the Host or X-Forwarded-* headers."""

from __future__ import annotations

import io
from collections.abc import Iterator

import httpx
import pytest
from checkin_emulator import TwilioEmulator

from tests.conftest import make_settings
from tests.ops.helpers import serve
from worker.channels import Channels
from worker.channels.console import ConsoleEmail, ConsoleSms
from worker.services.runtime import build_runtime
from worker.web.app import create_app

PARAMS = {
    "MessageSid": "SM0123456789abcdef0123456789abcdef",
    "MessageStatus": "delivered",
    "AccountSid": "AC00000000000000000000000000000000",
}


@pytest.fixture(params=["https://checkin.clinic.example", "https://clinic.example/checkin"])
def internal(
    request: pytest.FixtureRequest, sqlite_url: str, twilio_emulator: TwilioEmulator
) -> Iterator[tuple[str, str]]:
    """(the public URL Twilio is given, the internal URL the proxy forwards to). The second
    public URL has a path prefix, which the proxy strips."""
    public = str(request.param)
    settings = make_settings(
        sqlite_url, public_url=public, twilio_auth_token=twilio_emulator.auth_token
    )
    rt = build_runtime(
        settings, channels=Channels(ConsoleSms(io.StringIO()), ConsoleEmail(io.StringIO()))
    )
    with serve(create_app(settings, rt)) as url:
        yield public, url
    rt.close()


def forward(internal_url: str, path: str, signature: str, **headers: str) -> httpx.Response:
    """What the proxy sends on: the same form, the same signature, to the internal address."""
    return httpx.post(
        f"{internal_url}{path}",
        data=PARAMS,
        headers={"X-Twilio-Signature": signature, **headers},
    )


def test_a_request_signed_for_the_public_url_validates_at_the_internal_address(
    internal: tuple[str, str], twilio_emulator: TwilioEmulator
) -> None:
    public, url = internal
    signature = twilio_emulator.sign(f"{public}/webhooks/twilio/status", PARAMS)
    response = forward(
        url,
        "/webhooks/twilio/status",
        signature,
        **{"X-Forwarded-Proto": "https", "X-Forwarded-For": "203.0.113.9"},
    )
    assert response.status_code == 200, response.text


def test_a_signature_for_the_internal_url_is_refused(
    internal: tuple[str, str], twilio_emulator: TwilioEmulator
) -> None:
    _, url = internal
    signature = twilio_emulator.sign(f"{url}/webhooks/twilio/status", PARAMS)
    assert forward(url, "/webhooks/twilio/status", signature).status_code == 403


def test_forwarded_headers_cannot_choose_the_url_that_is_checked(
    internal: tuple[str, str], twilio_emulator: TwilioEmulator
) -> None:
    _, url = internal
    forged = "https://attacker.example"
    signature = twilio_emulator.sign(f"{forged}/webhooks/twilio/status", PARAMS)
    response = forward(
        url,
        "/webhooks/twilio/status",
        signature,
        **{
            "Host": "attacker.example",
            "X-Forwarded-Host": "attacker.example",
            "X-Forwarded-Proto": "https",
        },
    )
    assert response.status_code == 403
