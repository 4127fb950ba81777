"""The Twilio emulator speaks Twilio's wire format: checked with the real SDK and raw HTTP."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.parse
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
from checkin_emulator import DEFAULT_NUMBER, TwilioEmulator, count_segments
from twilio.base.exceptions import TwilioRestException
from twilio.request_validator import RequestValidator
from twilio.rest import Client

from worker.channels.twilio_http import ApiUrlHttpClient, Transport
from worker.domain import sms_text

PATIENT = "+15551230001"
FROM = "+15005550006"


def sdk_client(emulator: TwilioEmulator, token: str | None = None) -> Client:
    http = ApiUrlHttpClient(Transport(emulator.base_url, pool_size=4), timeout=5)
    return Client(
        emulator.account_sid,
        token or emulator.auth_token,
        http_client=http,
        environment={"TWILIO_REGION": ""},
    )


def api(emulator: TwilioEmulator) -> httpx.Client:
    return httpx.Client(
        base_url=emulator.base_url,
        auth=(emulator.account_sid, emulator.auth_token),
        timeout=5,
    )


def messages_path(emulator: TwilioEmulator) -> str:
    return f"/2010-04-01/Accounts/{emulator.account_sid}/Messages.json"


# -- a webhook receiver ---------------------------------------------------------------------


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: str

    @property
    def params(self) -> dict[str, str]:
        return dict(urllib.parse.parse_qsl(self.body, keep_blank_values=True))


@dataclass
class Receiver:
    url: str
    requests: list[Received] = field(default_factory=list)
    condition: threading.Condition = field(default_factory=threading.Condition)

    def wait_for(self, count: int, timeout: float = 5.0) -> list[Received]:
        with self.condition:
            self.condition.wait_for(lambda: len(self.requests) >= count, timeout)
            return list(self.requests)


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    box: list[Receiver] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length).decode()
            got = Received(self.path, dict(self.headers.items()), body)
            reply = b"<Response/>"
            self.send_response(200)
            self.send_header("Content-Type", "text/xml")
            self.send_header("Content-Length", str(len(reply)))
            self.end_headers()
            self.wfile.write(reply)
            with box[0].condition:
                box[0].requests.append(got)
                box[0].condition.notify_all()

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    box.append(Receiver(f"http://127.0.0.1:{server.server_address[1]}"))
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    yield box[0]
    server.shutdown()
    server.server_close()
    thread.join()


# -- the Messages API -----------------------------------------------------------------------


def test_created_messages_have_twilios_json_shape(twilio_emulator: TwilioEmulator) -> None:
    with api(twilio_emulator) as http:
        response = http.post(
            messages_path(twilio_emulator), data={"To": PATIENT, "From": FROM, "Body": "hi"}
        )
    assert response.status_code == 201
    body = response.json()
    assert body["sid"].startswith("SM") and len(body["sid"]) == 34
    assert body["status"] == "queued" and body["direction"] == "outbound-api"
    assert body["num_segments"] == "1" and body["num_media"] == "0"
    assert body["error_code"] is None and body["price"] is None
    assert body["account_sid"] == twilio_emulator.account_sid
    assert body["api_version"] == "2010-04-01"
    assert body["uri"] == (
        f"/2010-04-01/Accounts/{twilio_emulator.account_sid}/Messages/{body['sid']}.json"
    )
    # RFC 2822 in GMT, e.g. "Mon, 16 Aug 2010 03:45:01 +0000"
    parsed = datetime.strptime(body["date_created"], "%a, %d %b %Y %H:%M:%S %z")
    assert parsed.utcoffset() == timedelta(0)
    assert body["date_sent"] and body["date_updated"]


@pytest.mark.parametrize(
    ("form", "code"),
    [
        ({"From": FROM, "Body": "hi"}, 21604),
        ({"To": PATIENT, "From": FROM}, 21602),
        ({"To": PATIENT, "Body": "hi"}, 21603),
        ({"To": "555-123-0001", "From": FROM, "Body": "hi"}, 21211),
        ({"To": PATIENT, "From": FROM, "Body": "x" * 1601}, 21617),
    ],
)
def test_invalid_requests_get_twilios_error_json(
    twilio_emulator: TwilioEmulator, form: dict[str, str], code: int
) -> None:
    with api(twilio_emulator) as http:
        response = http.post(messages_path(twilio_emulator), data=form)
    assert response.status_code == 400
    error = response.json()
    assert set(error) == {"code", "message", "more_info", "status"}
    assert error["code"] == code and error["status"] == 400
    assert error["more_info"] == f"https://www.twilio.com/docs/errors/{code}"
    assert twilio_emulator.messages == []


def test_wrong_credentials_get_401_with_code_20003(twilio_emulator: TwilioEmulator) -> None:
    response = httpx.post(
        twilio_emulator.base_url + messages_path(twilio_emulator),
        data={"To": PATIENT, "From": FROM, "Body": "hi"},
        auth=(twilio_emulator.account_sid, "wrong"),
    )
    assert response.status_code == 401
    assert response.json()["code"] == 20003
    assert response.headers["WWW-Authenticate"].startswith("Basic")


def test_an_injected_429_carries_retry_after(twilio_emulator: TwilioEmulator) -> None:
    twilio_emulator.configure(error_rate=1.0, errors=[[429, 20429]], retry_after=3)
    with api(twilio_emulator) as http:
        response = http.post(
            messages_path(twilio_emulator), data={"To": PATIENT, "From": FROM, "Body": "hi"}
        )
    assert response.status_code == 429
    assert response.headers["Retry-After"] == "3"
    assert response.json()["code"] == 20429
    assert twilio_emulator.stats()["injected"] == {"20429": 1}


def test_error_injection_is_reproducible_with_a_seed(twilio_emulator: TwilioEmulator) -> None:
    def run() -> list[int]:
        twilio_emulator.reset()
        twilio_emulator.configure(
            seed=42, error_rate=0.5, errors=[[429, 20429], [500, 20500], [400, 21211]]
        )
        with api(twilio_emulator) as http:
            return [
                http.post(
                    messages_path(twilio_emulator),
                    data={"To": PATIENT, "From": FROM, "Body": "hi"},
                ).status_code
                for _ in range(30)
            ]

    first, second = run(), run()
    assert first == second
    assert {201, 429, 500, 400} <= set(first)


def test_the_sdk_fetches_a_message_and_gets_20404_for_an_unknown_one(
    twilio_emulator: TwilioEmulator,
) -> None:
    client = sdk_client(twilio_emulator)
    sent = client.messages.create(to=PATIENT, from_=FROM, body="hello")
    fetched = client.messages(sent.sid).fetch()
    assert fetched.sid == sent.sid and fetched.body == "hello" and fetched.to == PATIENT
    assert fetched.date_created == sent.date_created
    with pytest.raises(TwilioRestException) as info:
        client.messages("SM" + "0" * 32).fetch()
    assert info.value.status == 404 and info.value.code == 20404


def test_the_sdk_lists_and_streams_across_pages(twilio_emulator: TwilioEmulator) -> None:
    client = sdk_client(twilio_emulator)
    sids = [client.messages.create(to=PATIENT, from_=FROM, body=f"m{i}").sid for i in range(7)]
    client.messages.create(to="+15551230002", from_=FROM, body="other")

    listed = client.messages.list(to=PATIENT, page_size=3)
    assert [m.sid for m in listed] == list(reversed(sids))  # newest first, 3 pages
    streamed = list(client.messages.stream(to=PATIENT, page_size=2, limit=5))
    assert [m.sid for m in streamed] == list(reversed(sids))[:5]
    assert len(client.messages.list(page_size=4)) == 8

    first = client.messages.page(to=PATIENT, page_size=3)
    assert first.next_page_url is not None and "PageToken=PA" in first.next_page_url
    second = first.next_page()
    assert [m.sid for m in second] == list(reversed(sids))[3:6]
    back = second.previous_page()
    assert [m.sid for m in back] == list(reversed(sids))[:3]


def test_list_pages_have_twilios_paging_fields(twilio_emulator: TwilioEmulator) -> None:
    with api(twilio_emulator) as http:
        for i in range(3):
            http.post(
                messages_path(twilio_emulator), data={"To": PATIENT, "From": FROM, "Body": str(i)}
            )
        page = http.get(messages_path(twilio_emulator), params={"To": PATIENT, "PageSize": 2})
        body = page.json()
        assert page.status_code == 200
        assert {
            "messages",
            "page",
            "page_size",
            "start",
            "end",
            "uri",
            "first_page_uri",
            "next_page_uri",
            "previous_page_uri",
        } == set(body)
        assert (body["page"], body["page_size"], body["start"], body["end"]) == (0, 2, 0, 1)
        assert body["previous_page_uri"] is None
        assert body["next_page_uri"].startswith(messages_path(twilio_emulator) + "?")
        assert "To=%2B15551230001" in body["next_page_uri"]
        last = http.get(body["next_page_uri"]).json()
        assert [m["body"] for m in last["messages"]] == ["0"]
        assert last["next_page_uri"] is None and last["page"] == 1


def test_date_sent_filters_compare_utc_dates() -> None:
    now = [datetime(2025, 3, 9, 23, 59, 59, tzinfo=UTC)]
    with TwilioEmulator(clock=lambda: now[0]) as emulator:
        client = sdk_client(emulator)
        client.messages.create(to=PATIENT, from_=FROM, body="9th")
        now[0] = datetime(2025, 3, 10, 0, 0, 0, tzinfo=UTC)
        client.messages.create(to=PATIENT, from_=FROM, body="10th")
        now[0] = datetime(2025, 3, 11, 12, 0, 0, tzinfo=UTC)
        client.messages.create(to=PATIENT, from_=FROM, body="11th")

        def bodies(**filters: Any) -> list[str]:
            return [m.body for m in client.messages.list(to=PATIENT, **filters)]

        # The SDK sends datetimes as "2025-03-10T15:00:00Z"; Twilio uses the date part.
        assert bodies(date_sent=datetime(2025, 3, 10, 15, tzinfo=UTC)) == ["10th"]
        assert bodies(date_sent_after=datetime(2025, 3, 10, 15, tzinfo=UTC)) == ["11th", "10th"]
        assert bodies(date_sent_before=datetime(2025, 3, 10, tzinfo=UTC)) == ["10th", "9th"]
        with httpx.Client(
            base_url=emulator.base_url, auth=(emulator.account_sid, emulator.auth_token)
        ) as http:
            raw = http.get(messages_path(emulator) + "?DateSent>=2025-03-11").json()
            assert [m["body"] for m in raw["messages"]] == ["11th"]
            bad = http.get(messages_path(emulator), params={"DateSent": "yesterday"})
            assert bad.status_code == 400 and bad.json()["code"] == 20001


def test_it_serves_a_hundred_concurrent_requests(twilio_emulator: TwilioEmulator) -> None:
    twilio_emulator.configure(latency_ms=300)
    barrier = threading.Barrier(100)
    http = httpx.Client(
        base_url=twilio_emulator.base_url,
        auth=(twilio_emulator.account_sid, twilio_emulator.auth_token),
        limits=httpx.Limits(max_connections=100),
        timeout=10,
    )

    def send(i: int) -> tuple[int, float]:
        barrier.wait()
        started = time.monotonic()
        code = http.post(
            messages_path(twilio_emulator),
            data={"To": f"+1555000{i:04d}", "From": FROM, "Body": "hi"},
        ).status_code
        return code, time.monotonic() - started

    with http, ThreadPoolExecutor(max_workers=100) as pool:
        results = list(pool.map(send, range(100)))
    assert [code for code, _ in results] == [201] * 100
    # Served in parallel: 100 sequential requests would take 30 s.
    assert max(elapsed for _, elapsed in results) < 3
    assert len(twilio_emulator.messages) == 100


def test_segments_are_counted_honestly() -> None:
    assert count_segments("a" * 160) == 1
    assert count_segments("a" * 161) == 2
    assert count_segments("a" * 306) == 2 and count_segments("a" * 307) == 3
    # Extension characters cost two septets, and an escape pair is never split.
    assert count_segments("€" * 80) == 1 and count_segments("€" * 81) == 2
    assert count_segments("a" * 152 + "€") == 1
    assert count_segments("a" * 152 + "€" * 77) == 3  # 306 septets, yet 3 segments
    # UCS-2: 70 / 67; an emoji is two UTF-16 units.
    assert count_segments("é" * 160) == 1  # é is GSM-7
    assert count_segments("\u201c" + "a" * 69) == 1 and count_segments("\u201c" + "a" * 70) == 2
    assert count_segments("\U0001f600" * 35) == 1 and count_segments("\U0001f600" * 36) == 2
    assert count_segments("a" * 66 + "\U0001f600" + "a" * 66) == 3  # the pair is not split


@pytest.mark.parametrize(
    "body",
    ["", "a" * 160, "a" * 161, "€" * 81, "a" * 152 + "€" * 77, "\u2019" * 71, "\U0001f600" * 36],
)
def test_the_emulator_and_the_template_checks_agree_on_segments(body: str) -> None:
    # Two implementations on purpose: the emulator is the test oracle for the product's count.
    assert count_segments(body) == max(sms_text.segments(body), 1)


# -- webhooks -------------------------------------------------------------------------------


def test_inbound_webhooks_are_signed_like_twilio(
    twilio_emulator: TwilioEmulator, receiver: Receiver
) -> None:
    url = receiver.url + "/webhooks/twilio/sms?clinic=1"
    response = twilio_emulator.send_inbound(url, PATIENT, "7 3")
    assert response.status_code == 200 and response.text == "<Response/>"
    [got] = receiver.wait_for(1)
    params = got.params
    assert params["From"] == PATIENT and params["Body"] == "7 3"
    assert params["To"] == DEFAULT_NUMBER and params["NumMedia"] == "0"
    assert params["MessageSid"] == params["SmsSid"] and params["MessageSid"].startswith("SM")
    assert params["AccountSid"] == twilio_emulator.account_sid
    assert got.headers["Content-Type"].startswith("application/x-www-form-urlencoded")

    validator = RequestValidator(twilio_emulator.auth_token)
    signature = got.headers["X-Twilio-Signature"]
    assert validator.validate(url, params, signature)
    assert not validator.validate(url, {**params, "Body": "0 10"}, signature)
    assert not validator.validate(receiver.url + "/other", params, signature)
    assert not RequestValidator("another-token").validate(url, params, signature)


def test_inbound_webhooks_take_a_given_sid_and_extra_fields(
    twilio_emulator: TwilioEmulator, receiver: Receiver
) -> None:
    sid = "SM" + "c" * 32
    twilio_emulator.send_inbound(
        receiver.url + "/in",
        PATIENT,
        "STOP",
        to="+15559990000",
        message_sid=sid,
        extra={"OptOutType": "STOP"},
    )
    [got] = receiver.wait_for(1)
    assert got.params["MessageSid"] == sid and got.params["To"] == "+15559990000"
    assert got.params["OptOutType"] == "STOP"
    assert RequestValidator(twilio_emulator.auth_token).validate(
        receiver.url + "/in", got.params, got.headers["X-Twilio-Signature"]
    )


def test_status_webhooks_are_signed(twilio_emulator: TwilioEmulator, receiver: Receiver) -> None:
    url = receiver.url + "/webhooks/twilio/status"
    twilio_emulator.send_status(url, "SM" + "d" * 32, "undelivered", error_code=30003)
    [got] = receiver.wait_for(1)
    assert got.params["MessageStatus"] == "undelivered" and got.params["ErrorCode"] == "30003"
    assert RequestValidator(twilio_emulator.auth_token).validate(
        url, got.params, got.headers["X-Twilio-Signature"]
    )


def test_webhook_answers_other_than_2xx_are_returned_not_raised(
    twilio_emulator: TwilioEmulator,
) -> None:
    response = twilio_emulator.send_inbound(twilio_emulator.base_url + "/nowhere", PATIENT, "hi")
    assert response.status_code == 401
    assert response.json()["code"] == 20003


def test_it_sends_status_callbacks_after_accepting(
    twilio_emulator: TwilioEmulator, receiver: Receiver
) -> None:
    twilio_emulator.configure(
        status_callbacks=True, numbers={"+15550009999": {"delivery_error": 30003}}
    )
    client = sdk_client(twilio_emulator)
    url = receiver.url + "/status"
    ok = client.messages.create(to=PATIENT, from_=FROM, body="hi", status_callback=url)
    bad = client.messages.create(to="+15550009999", from_=FROM, body="hi", status_callback=url)
    client.messages.create(to="+15550001234", from_=FROM, body="no callback asked for")

    got = receiver.wait_for(4)
    assert len(got) == 4
    validator = RequestValidator(twilio_emulator.auth_token)
    assert all(validator.validate(url, r.params, r.headers["X-Twilio-Signature"]) for r in got)
    by_sid: dict[str, list[tuple[str, str | None]]] = {}
    for r in got:
        by_sid.setdefault(r.params["MessageSid"], []).append(
            (r.params["MessageStatus"], r.params.get("ErrorCode"))
        )
    assert by_sid[ok.sid] == [("sent", None), ("delivered", None)]
    assert by_sid[bad.sid] == [("sent", None), ("undelivered", "30003")]
    assert client.messages(bad.sid).fetch().error_code == 30003
    deadline = time.monotonic() + 2
    while twilio_emulator.stats()["callbacks_sent"] < 4 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert twilio_emulator.stats()["callbacks_sent"] == 4


# -- control over HTTP ----------------------------------------------------------------------


def test_it_is_driven_over_http(twilio_emulator: TwilioEmulator) -> None:
    base = twilio_emulator.base_url
    with httpx.Client(base_url=base, timeout=5) as http:
        config = http.post(
            "/_emulator/config",
            json={"error_rate": 1.0, "errors": [[500, 20500]], "latency_ms": 1},
        )
        assert config.status_code == 200 and config.json()["error_rate"] == 1.0
        assert twilio_emulator.config["errors"] == [[500, 20500]]
        assert http.get("/_emulator/config").json()["latency_ms"] == 1

        with api(twilio_emulator) as client:
            form = {"To": PATIENT, "From": FROM, "Body": "hi"}
            assert client.post(messages_path(twilio_emulator), data=form).status_code == 500
            http.post("/_emulator/config", json={"error_rate": 0.0})
            assert client.post(messages_path(twilio_emulator), data=form).status_code == 201

        stats = http.get("/_emulator/stats").json()
        assert stats["requests"] == 2 and stats["accepted"] == 1
        assert stats["injected"] == {"20500": 1} and stats["errors"] == {"20500": 1}
        [message] = http.get("/_emulator/messages").json()
        assert message["to"] == PATIENT and message["params"]["Body"] == "hi"

        bad = http.post("/_emulator/config", json={"error_rate": 3})
        assert bad.status_code == 400 and "error_rate" in bad.json()["error"]
        assert http.post("/_emulator/config", json={"nope": 1}).status_code == 400
        assert http.post("/_emulator/config", content=b"not json").status_code == 400

        assert http.post("/_emulator/reset").json() == {"ok": True}
        assert http.get("/_emulator/messages").json() == []
        assert http.get("/_emulator/stats").json()["accepted"] == 0
        assert twilio_emulator.config["error_rate"] == 0.0
        assert http.get("/_emulator/nothing").status_code == 404


def test_a_held_response_does_not_delay_stopping() -> None:
    emulator = TwilioEmulator().start()
    emulator.configure(timeout_after_accept_rate=1.0, hang_seconds=30)
    with pytest.raises(httpx.ReadTimeout), api(emulator) as http:
        http.post(
            messages_path(emulator),
            data={"To": PATIENT, "From": FROM, "Body": "hi"},
            timeout=0.3,
        )
    started = time.monotonic()
    emulator.stop()
    assert time.monotonic() - started < 2
    assert len(emulator.messages) == 1


def test_it_runs_as_a_module_until_sigterm(tmp_path: Path) -> None:
    root = Path(__file__).resolve().parents[2]
    proc = subprocess.Popen(
        [sys.executable, "-m", "checkin_emulator", "--port", "0", "--auth-token", "t0k"],
        cwd=root,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        # The emulator is its own distribution (emulator/): found installed (make install) or
        # from its folder in the checkout.
        env={**os.environ, "PYTHONPATH": os.pathsep.join([str(root / "emulator"), str(root)])},
    )
    try:
        assert proc.stdout is not None
        url = proc.stdout.readline().strip()
        assert url.startswith("http://127.0.0.1:")
        assert httpx.get(url + "/_emulator/stats", timeout=5).json()["accepted"] == 0
        response = httpx.post(
            url + "/2010-04-01/Accounts/ACaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa/Messages.json",
            data={"To": PATIENT, "From": FROM, "Body": "hi"},
            auth=("ACaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", "t0k"),
            timeout=5,
        )
        assert response.status_code == 201, json.dumps(response.json())
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=10) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        for pipe in (proc.stdout, proc.stderr):
            if pipe is not None:
                pipe.close()
