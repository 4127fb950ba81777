"""The console channels print readable blocks and remember what they "sent"."""

from __future__ import annotations

import io
import threading
from datetime import UTC, datetime

import pytest

from worker.channels import EmailChannel, SmsChannel
from worker.channels.console import ConsoleEmail, ConsoleSms
from worker.channels.factory import build_channels
from worker.config import Settings


def test_console_sms_prints_the_number_and_body_and_keeps_a_record() -> None:
    stream = io.StringIO()
    sms = ConsoleSms(stream)
    result = sms.send_sms("+15551230001", "Mood 0-10?", status_callback="http://x/status")

    out = stream.getvalue()
    assert "+15551230001" in out and "Mood 0-10?" in out
    assert result.provider_id is not None and result.provider_id.startswith("console-")
    assert result.provider_id in out
    assert len(result.provider_id) == len("console-") + 32
    assert result.status == "sent" and result.segments == 1
    assert "1 segment, GSM-7" in out
    [record] = sms.sent
    assert (record.to, record.body, record.status_callback) == (
        "+15551230001",
        "Mood 0-10?",
        "http://x/status",
    )
    assert record.provider_id == result.provider_id


def test_console_sms_counts_segments_like_the_provider() -> None:
    stream = io.StringIO()
    result = ConsoleSms(stream).send_sms("+15551230001", "\u201cquoted\u201d " + "a" * 70)
    assert result.segments == 2
    assert "2 segments, UCS-2" in stream.getvalue()


def test_console_sms_cannot_reconcile() -> None:
    sms = ConsoleSms(io.StringIO())
    assert isinstance(sms, SmsChannel)
    assert sms.name == "console" and sms.can_reconcile is False
    sms.send_sms("+15551230001", "hi")
    assert sms.find_sent("+15551230001", datetime(2000, 1, 1, tzinfo=UTC)) == []


def test_console_email_prints_subject_and_text_and_keeps_a_record() -> None:
    stream = io.StringIO()
    email = ConsoleEmail(stream)
    assert isinstance(email, EmailChannel) and email.name == "console"
    result = email.send_email(
        "pat@example.org",
        "Your check-in",
        "How was today?",
        "<p>How was today?</p>",
        message_id="<m1@clinic>",
    )
    out = stream.getvalue()
    assert "pat@example.org" in out and "Subject: Your check-in" in out
    assert "How was today?" in out and "<m1@clinic>" in out
    assert "HTML alternative" in out and "<p>" not in out
    [record] = email.sent
    assert record.html == "<p>How was today?</p>" and record.message_id == "<m1@clinic>"
    assert record.provider_id == result.provider_id


def test_the_default_stream_is_stdout_at_call_time(capsys: pytest.CaptureFixture[str]) -> None:
    sms = ConsoleSms()  # built before the capture below starts to matter
    sms.send_sms("+15551230001", "to the terminal")
    assert "to the terminal" in capsys.readouterr().out


def test_blocks_from_many_threads_do_not_interleave() -> None:
    stream = io.StringIO()
    sms = ConsoleSms(stream)
    threads = [
        threading.Thread(target=sms.send_sms, args=(f"+1555123{i:04d}", f"body {i}"))
        for i in range(50)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(sms.sent) == 50
    blocks = [b for b in stream.getvalue().split("\n\n") if b.strip()]
    assert len(blocks) == 50
    for block in blocks:
        number = block.split("SMS to ")[1].split()[0]
        assert f"body {int(number[-4:])}" in block


def test_the_factory_builds_console_channels_by_default() -> None:
    stream = io.StringIO()
    settings = Settings(_env_file=None, sms_backend="console", email_backend="console")
    channels = build_channels(settings, stream=stream)
    assert isinstance(channels.sms, ConsoleSms) and isinstance(channels.email, ConsoleEmail)
    channels.sms.send_sms("+15551230001", "hi")
    assert "hi" in stream.getvalue()


def test_the_factory_builds_twilio_and_smtp_channels_when_asked() -> None:
    from worker.channels.smtp_email import SmtpEmail
    from worker.channels.twilio_sms import TwilioSms

    settings = Settings(
        _env_file=None,
        sms_backend="twilio",
        email_backend="smtp",
        twilio_account_sid="AC" + "a" * 32,
        twilio_auth_token="token",
        twilio_from_number="+15005550006",
        twilio_api_url="http://127.0.0.1:8099/",
        twilio_timeout_seconds=3.0,
        smtp_host="mail.example",
        smtp_port=2525,
        smtp_password="pw",
        email_from="noreply@clinic.example",
    )
    channels = build_channels(settings)
    assert isinstance(channels.sms, TwilioSms) and isinstance(channels.email, SmtpEmail)
    assert channels.sms.api_url == "http://127.0.0.1:8099"
    assert channels.sms.timeout == 3.0 and channels.sms.from_number == "+15005550006"
    assert (channels.email.host, channels.email.port) == ("mail.example", 2525)
    assert channels.email.from_addr == "noreply@clinic.example"
