"""Request bodies are size-limited on every route, before any route reads them: a declared
length over the limit is refused unread, a streamed (chunked) body as soon as it passes it."""

from __future__ import annotations

import http.client
import io
import json
from collections.abc import Iterator
from urllib.parse import urlsplit

import httpx
import pytest
from checkin_emulator import TwilioEmulator
from sqlalchemy import func, select

from tests.conftest import make_settings
from tests.ops.helpers import free_port, serve
from worker.channels import Channels
from worker.channels.console import ConsoleEmail, ConsoleSms
from worker.services.runtime import Runtime, build_runtime
from worker.store.db import session_scope
from worker.store.models import InboundMessage, Patient
from worker.web.app import create_app

LIMIT = 64 * 1024
TOKEN = "api-token-for-limits"
ROUTES = [
    ("POST", "/webhooks/twilio/sms"),
    ("POST", "/webhooks/twilio/status"),
    ("POST", "/api/patients"),
    ("POST", "/login"),
    ("POST", "/q/some-questionnaire-token"),
    ("PUT", "/no/such/route"),
]


@pytest.fixture
def app(sqlite_url: str, twilio_emulator: TwilioEmulator) -> Iterator[tuple[str, Runtime]]:
    port = free_port()
    settings = make_settings(
        sqlite_url,
        public_url=f"http://127.0.0.1:{port}",
        twilio_auth_token=twilio_emulator.auth_token,
        api_token=TOKEN,
    )
    rt = build_runtime(
        settings, channels=Channels(ConsoleSms(io.StringIO()), ConsoleEmail(io.StringIO()))
    )
    with serve(create_app(settings, rt), port) as url:
        yield url, rt
    rt.close()


def stored(rt: Runtime) -> tuple[int, int]:
    with session_scope(rt.sessions) as session:
        inbound = session.scalar(select(func.count()).select_from(InboundMessage))
        patients = session.scalar(select(func.count()).select_from(Patient))
    return int(inbound or 0), int(patients or 0)


def assert_too_large(response: httpx.Response) -> None:
    assert response.status_code == 413, response.text
    assert response.headers["content-type"] == "application/problem+json"
    problem = response.json()
    assert problem["status"] == 413 and problem["title"] == "Too large"
    assert str(LIMIT) in problem["detail"]


@pytest.mark.parametrize(("method", "path"), ROUTES)
def test_a_declared_length_over_the_limit_is_refused_unread(
    app: tuple[str, Runtime], method: str, path: str
) -> None:
    url, rt = app
    # Only the headers are sent: the answer must come without the body ever being read.
    parts = urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=10)
    conn.putrequest(method, path)
    conn.putheader("Content-Type", "application/x-www-form-urlencoded")
    conn.putheader("Authorization", f"Bearer {TOKEN}")
    conn.putheader("Content-Length", str(50 * 1024 * 1024))
    conn.endheaders()
    response = conn.getresponse()
    body = response.read()
    conn.close()
    assert response.status == 413
    assert response.getheader("Content-Type") == "application/problem+json"
    assert json.loads(body)["title"] == "Too large"
    assert stored(rt) == (0, 0)


def test_a_streamed_webhook_body_is_refused_once_it_passes_the_limit(
    app: tuple[str, Runtime], twilio_emulator: TwilioEmulator
) -> None:
    url, rt = app
    params = {"MessageSid": "SM1", "From": "+12125550101", "Body": "x" * (LIMIT + 10)}
    target = f"{url}/webhooks/twilio/sms"
    encoded = httpx.QueryParams(params).__str__().encode()

    def chunks() -> Iterator[bytes]:
        for i in range(0, len(encoded), 8192):
            yield encoded[i : i + 8192]

    response = httpx.post(
        target,
        content=chunks(),
        headers={
            "Content-Type": "application/x-www-form-urlencoded",
            "X-Twilio-Signature": twilio_emulator.sign(target, params),
        },
    )
    assert "content-length" not in {k.lower() for k in response.request.headers}
    assert_too_large(response)
    assert stored(rt) == (0, 0)


def test_a_streamed_json_body_is_refused_once_it_passes_the_limit(
    app: tuple[str, Runtime],
) -> None:
    url, rt = app
    payload = json.dumps({"name": "A" * (LIMIT + 10), "tz": "America/New_York"}).encode()
    response = httpx.post(
        f"{url}/api/patients",
        content=iter([payload[:4096], payload[4096:]]),
        headers={"Content-Type": "application/json", "Authorization": f"Bearer {TOKEN}"},
    )
    assert_too_large(response)
    assert stored(rt) == (0, 0)


def test_a_body_under_the_limit_goes_through(
    app: tuple[str, Runtime], twilio_emulator: TwilioEmulator
) -> None:
    url, rt = app
    response = twilio_emulator.send_inbound(
        f"{url}/webhooks/twilio/sms", "+12125550101", "7 " * 20_000
    )
    assert response.status_code == 200, response.text
    assert stored(rt) == (1, 0)
