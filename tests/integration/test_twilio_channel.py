"""TwilioSms: the real twilio SDK over HTTP against the emulator."""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from checkin_emulator import TwilioEmulator

from worker.channels import ChannelError, DeliveryUnknown, SmsChannel
from worker.channels.twilio_sms import TwilioSms

FROM = "+15005550006"
PATIENT = "+15551230001"
SECRET_BODY = "Mood 0-10? Pain 0-10? Reply with two numbers."


@pytest.fixture
def channel(twilio_emulator: TwilioEmulator) -> Iterator[TwilioSms]:
    sms = TwilioSms(
        twilio_emulator.account_sid,
        twilio_emulator.auth_token,
        from_number=FROM,
        messaging_service_sid=None,
        api_url=twilio_emulator.base_url,
        timeout=0.5,
    )
    yield sms
    sms.close()


def assert_no_pii(err: BaseException) -> None:
    text = str(err)
    assert PATIENT not in text and "5551230001" not in text
    assert SECRET_BODY not in text
    assert err.__cause__ is None and (err.__context__ is None or err.__suppress_context__)


def test_it_is_an_sms_channel(channel: TwilioSms) -> None:
    assert isinstance(channel, SmsChannel)
    assert channel.name == "twilio" and channel.can_reconcile


def test_it_sends_exactly_the_payload_and_the_emulator_records_it(
    channel: TwilioSms, twilio_emulator: TwilioEmulator
) -> None:
    result = channel.send_sms(
        PATIENT, SECRET_BODY, status_callback="http://127.0.0.1:8000/webhooks/twilio/status"
    )

    [recorded] = twilio_emulator.messages
    assert recorded["params"] == {
        "To": PATIENT,
        "From": FROM,
        "Body": SECRET_BODY,
        "StatusCallback": "http://127.0.0.1:8000/webhooks/twilio/status",
    }
    assert result.provider_id == recorded["sid"]
    assert result.provider_id is not None and result.provider_id.startswith("SM")
    assert len(result.provider_id) == 34
    assert result.segments == 1
    assert result.status == "queued"
    assert twilio_emulator.count_by_to() == {PATIENT: 1}


def test_it_omits_the_status_callback_when_none_is_given(
    channel: TwilioSms, twilio_emulator: TwilioEmulator
) -> None:
    channel.send_sms(PATIENT, "hi")
    assert "StatusCallback" not in twilio_emulator.messages[0]["params"]


def test_it_reports_segments_as_twilio_counts_them(channel: TwilioSms) -> None:
    assert channel.send_sms(PATIENT, "a" * 160).segments == 1
    assert channel.send_sms(PATIENT, "a" * 161).segments == 2
    # One curly quote turns the whole message into UCS-2: 70 per segment, 67 when split.
    assert channel.send_sms(PATIENT, "\u2019" + "a" * 69).segments == 1
    assert channel.send_sms(PATIENT, "\u2019" + "a" * 70).segments == 2


def test_it_sends_through_a_messaging_service_when_there_is_no_from_number(
    twilio_emulator: TwilioEmulator,
) -> None:
    sms = TwilioSms(
        twilio_emulator.account_sid,
        twilio_emulator.auth_token,
        from_number=None,
        messaging_service_sid="MG" + "b" * 32,
        api_url=twilio_emulator.base_url,
        timeout=2,
    )
    result = sms.send_sms(PATIENT, "hi")
    sms.close()
    params = twilio_emulator.messages[0]["params"]
    assert params == {"To": PATIENT, "MessagingServiceSid": "MG" + "b" * 32, "Body": "hi"}
    assert result.status == "accepted"
    assert result.segments is None  # Twilio says 0 until the service has picked a sender


@pytest.mark.parametrize("code", [21211, 21614])
def test_an_unreachable_number_is_a_permanent_error(
    channel: TwilioSms, twilio_emulator: TwilioEmulator, code: int
) -> None:
    twilio_emulator.configure(numbers={PATIENT: {"code": code, "status": 400}})
    with pytest.raises(ChannelError) as info:
        channel.send_sms(PATIENT, SECRET_BODY)
    assert info.value.permanent
    assert info.value.code == str(code)
    assert not info.value.opted_out
    assert_no_pii(info.value)
    assert twilio_emulator.messages == []


def test_a_malformed_number_is_refused_by_twilio_as_21211(channel: TwilioSms) -> None:
    with pytest.raises(ChannelError) as info:
        channel.send_sms("5551230001", SECRET_BODY)
    assert info.value.permanent and info.value.code == "21211"
    # Twilio's own message quotes the number; ours must not.
    assert_no_pii(info.value)


def test_a_carrier_opt_out_is_permanent_and_flagged(
    channel: TwilioSms, twilio_emulator: TwilioEmulator
) -> None:
    twilio_emulator.configure(numbers={PATIENT: {"code": 21610, "status": 400}})
    with pytest.raises(ChannelError) as info:
        channel.send_sms(PATIENT, SECRET_BODY)
    assert info.value.permanent and info.value.opted_out
    assert info.value.code == "21610"
    assert_no_pii(info.value)


def test_a_429_is_transient_with_the_retry_after_twilio_asked_for(
    channel: TwilioSms, twilio_emulator: TwilioEmulator
) -> None:
    twilio_emulator.configure(error_rate=1.0, errors=[[429, 20429]], retry_after=7)
    with pytest.raises(ChannelError) as info:
        channel.send_sms(PATIENT, SECRET_BODY)
    assert not info.value.permanent
    assert info.value.code == "20429"
    assert info.value.retry_after == 7.0
    assert_no_pii(info.value)


def test_a_500_is_transient(channel: TwilioSms, twilio_emulator: TwilioEmulator) -> None:
    twilio_emulator.configure(error_rate=1.0, errors=[[500, 20500]])
    with pytest.raises(ChannelError) as info:
        channel.send_sms(PATIENT, SECRET_BODY)
    assert not info.value.permanent and info.value.retry_after is None
    assert info.value.code == "20500"
    # A 429 before does not leak its Retry-After into this error.
    twilio_emulator.configure(errors=[[429, 20429]])
    with pytest.raises(ChannelError):
        channel.send_sms(PATIENT, SECRET_BODY)
    twilio_emulator.configure(errors=[[503, 20503]])
    with pytest.raises(ChannelError) as info:
        channel.send_sms(PATIENT, SECRET_BODY)
    assert not info.value.permanent and info.value.retry_after is None


def test_wrong_credentials_are_a_permanent_error(twilio_emulator: TwilioEmulator) -> None:
    sms = TwilioSms(
        twilio_emulator.account_sid,
        "not-the-token",
        from_number=FROM,
        messaging_service_sid=None,
        api_url=twilio_emulator.base_url,
        timeout=2,
    )
    with pytest.raises(ChannelError) as info:
        sms.send_sms(PATIENT, SECRET_BODY)
    sms.close()
    assert info.value.permanent and info.value.code == "20003"
    assert twilio_emulator.messages == []


def test_connection_refused_is_transient_and_fast(closed_port: int) -> None:
    sms = TwilioSms(
        "AC" + "a" * 32,
        "token",
        from_number=FROM,
        messaging_service_sid=None,
        api_url=f"http://127.0.0.1:{closed_port}",
        timeout=5,
    )
    started = time.monotonic()
    with pytest.raises(ChannelError) as info:
        sms.send_sms(PATIENT, SECRET_BODY)
    assert time.monotonic() - started < 2
    assert not info.value.permanent
    assert_no_pii(info.value)


def test_a_timeout_after_acceptance_is_unknown_and_reconciliation_finds_the_message(
    channel: TwilioSms, twilio_emulator: TwilioEmulator
) -> None:
    since = datetime.now(UTC)
    twilio_emulator.configure(timeout_after_accept_rate=1.0, hang_seconds=2)
    started = time.monotonic()
    with pytest.raises(DeliveryUnknown) as info:
        channel.send_sms(PATIENT, SECRET_BODY)
    assert time.monotonic() - started < 1.5
    assert_no_pii(info.value)

    # Twilio did accept it: the request left before the client gave up.
    [accepted] = twilio_emulator.messages
    assert accepted["to"] == PATIENT
    assert twilio_emulator.stats()["timeouts_after_accept"] == 1

    twilio_emulator.configure(timeout_after_accept_rate=0.0)
    found = channel.find_sent(PATIENT, since)
    assert [m.provider_id for m in found] == [accepted["sid"]]
    assert found[0].to == PATIENT and found[0].body == SECRET_BODY
    assert found[0].created_at is not None and found[0].created_at.tzinfo is not None


def test_find_sent_ignores_other_numbers_and_earlier_messages() -> None:
    clock_value = [datetime(2025, 3, 9, 23, 50, tzinfo=UTC)]
    with TwilioEmulator(clock=lambda: clock_value[0]) as emulator:
        sms = TwilioSms(
            emulator.account_sid,
            emulator.auth_token,
            from_number=FROM,
            messaging_service_sid=None,
            api_url=emulator.base_url,
            timeout=2,
        )
        sms.send_sms(PATIENT, "the day before")
        clock_value[0] = datetime(2025, 3, 10, 8, 0, tzinfo=UTC)
        sms.send_sms(PATIENT, "early that morning")
        sms.send_sms("+15551230002", "someone else")
        clock_value[0] = datetime(2025, 3, 10, 9, 0, 0, tzinfo=UTC)
        wanted = sms.send_sms(PATIENT, "the one")
        # `since` with a fraction of a second: Twilio's timestamps have none.
        found = sms.find_sent(PATIENT, datetime(2025, 3, 10, 9, 0, 0, 400_000, tzinfo=UTC))
        also = sms.find_sent(PATIENT, datetime(2025, 3, 10, 7, 0, tzinfo=UTC))
        sms.close()
    assert [m.provider_id for m in found] == [wanted.provider_id]
    assert [m.body for m in also] == ["the one", "early that morning"]


def test_find_sent_when_twilio_cannot_be_reached_is_a_transient_error(closed_port: int) -> None:
    sms = TwilioSms(
        "AC" + "a" * 32,
        "token",
        from_number=FROM,
        messaging_service_sid=None,
        api_url=f"http://127.0.0.1:{closed_port}",
        timeout=1,
    )
    with pytest.raises(ChannelError) as info:
        sms.find_sent(PATIENT, datetime.now(UTC) - timedelta(hours=1))
    assert not info.value.permanent
    assert_no_pii(info.value)


def test_one_channel_sends_from_many_threads(
    channel: TwilioSms, twilio_emulator: TwilioEmulator
) -> None:
    from concurrent.futures import ThreadPoolExecutor

    numbers = [f"+1555123{i:04d}" for i in range(100)]
    with ThreadPoolExecutor(max_workers=32) as pool:
        results = list(pool.map(lambda n: channel.send_sms(n, "hi"), numbers))
    assert len({r.provider_id for r in results}) == 100
    assert twilio_emulator.count_by_to() == dict.fromkeys(numbers, 1)


# -- the connection pool, through a counting TCP relay ----------------------------------------


class Relay:
    """A TCP relay in front of the emulator that counts the connections it accepts and keeps
    the first bytes of each (the request line)."""

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.firsts: list[bytes] = []
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            upstream = socket.create_connection(("127.0.0.1", self.target_port))
            first = client.recv(65536)
            self.firsts.append(first)
            upstream.sendall(first)
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    @staticmethod
    def _pipe(src: socket.socket, dst: socket.socket) -> None:
        with contextlib.suppress(OSError):
            while data := src.recv(65536):
                dst.sendall(data)
        with contextlib.suppress(OSError):
            dst.shutdown(socket.SHUT_WR)

    def close(self) -> None:
        self.listener.close()


@pytest.fixture
def relay(twilio_emulator: TwilioEmulator) -> Iterator[Relay]:
    r = Relay(twilio_emulator.port)
    yield r
    r.close()


def test_sends_from_one_thread_reuse_one_kept_alive_connection(
    relay: Relay, twilio_emulator: TwilioEmulator
) -> None:
    sms = TwilioSms(
        twilio_emulator.account_sid,
        twilio_emulator.auth_token,
        from_number=FROM,
        messaging_service_sid=None,
        api_url=f"http://127.0.0.1:{relay.port}",
        timeout=5,
    )
    for i in range(10):
        sms.send_sms(f"+1555123{i:04d}", "hi")
    assert len(relay.firsts) == 1
    sms.close()  # closes the pooled connection; the channel reconnects on the next send
    sms.send_sms(PATIENT, "again")
    assert len(relay.firsts) == 2
    assert len(twilio_emulator.messages) == 11
    sms.close()


def test_many_threads_share_a_pool_of_at_most_one_connection_each(
    relay: Relay, twilio_emulator: TwilioEmulator
) -> None:
    from concurrent.futures import ThreadPoolExecutor

    sms = TwilioSms(
        twilio_emulator.account_sid,
        twilio_emulator.auth_token,
        from_number=FROM,
        messaging_service_sid=None,
        api_url=f"http://127.0.0.1:{relay.port}",
        timeout=5,
        pool_size=8,
    )
    numbers = [f"+1555123{i:04d}" for i in range(200)]
    with ThreadPoolExecutor(max_workers=8) as pool:
        list(pool.map(lambda n: sms.send_sms(n, "hi"), numbers))
    assert 1 <= len(relay.firsts) <= 8
    assert twilio_emulator.count_by_to() == dict.fromkeys(numbers, 1)
    sms.close()


def test_an_http_proxy_from_the_environment_is_used(
    relay: Relay, twilio_emulator: TwilioEmulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The relay stands in for the proxy: it passes on the absolute-form request line, which the
    # emulator accepts as a server behind a proxy would.
    for name in ("NO_PROXY", "no_proxy", "HTTP_PROXY", "http_proxy", "ALL_PROXY", "all_proxy"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HTTP_PROXY", f"http://127.0.0.1:{relay.port}")
    sms = TwilioSms(
        twilio_emulator.account_sid,
        twilio_emulator.auth_token,
        from_number=FROM,
        messaging_service_sid=None,
        api_url=twilio_emulator.base_url,
        timeout=5,
    )
    sms.send_sms(PATIENT, "through the proxy")
    [first] = relay.firsts
    assert first.startswith(f"POST {twilio_emulator.base_url}/2010-04-01/".encode())
    assert twilio_emulator.count_by_to() == {PATIENT: 1}
    sms.close()


def test_a_connection_dropped_after_the_request_is_unknown() -> None:
    """The server reads the whole request and closes without answering: it may have acted on
    it, so the outcome is unknown (never a transient error, which would be retried)."""
    got: list[bytes] = []

    def serve(listener: socket.socket) -> None:
        conn, _ = listener.accept()
        with conn:
            data = b""
            while b"\r\n\r\n" not in data:
                data += conn.recv(65536)
            got.append(data)

    with socket.create_server(("127.0.0.1", 0)) as listener:
        threading.Thread(target=serve, args=(listener,), daemon=True).start()
        sms = TwilioSms(
            "AC" + "a" * 32,
            "token",
            from_number=FROM,
            messaging_service_sid=None,
            api_url=f"http://127.0.0.1:{listener.getsockname()[1]}",
            timeout=5,
        )
        with pytest.raises(DeliveryUnknown) as info:
            sms.send_sms(PATIENT, SECRET_BODY)
    assert got and got[0].startswith(b"POST /2010-04-01/Accounts/")
    assert_no_pii(info.value)
