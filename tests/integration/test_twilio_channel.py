"""TwilioSms: the real twilio SDK over HTTP against the emulator."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest

from worker.channels import ChannelError, DeliveryUnknown, SmsChannel
from worker.channels.twilio_sms import TwilioSms
from worker.emulator import TwilioEmulator

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
