"""SmtpEmail against a real aiosmtpd server on loopback."""

from __future__ import annotations

import email
import email.policy
import shutil
import ssl
import subprocess
import time
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session

from worker.channels import ChannelError, DeliveryUnknown, EmailChannel
from worker.channels.smtp_email import SmtpEmail

PATIENT = "pat@example.org"
SUBJECT = "Your check-in"
TEXT = "How was your week? Reply with a number from 0 to 10.\n.a line starting with a dot\n"
HTML = "<p>How was your week? <a href='https://clinic.example/a/1'>0</a></p>"


def channel(server: Any, **overrides: Any) -> SmtpEmail:
    options: dict[str, Any] = {"from_addr": "Clinic <noreply@clinic.example>", "timeout": 5.0}
    options.update(overrides)
    return SmtpEmail(server.host, server.port, **options)


def parse(content: bytes) -> EmailMessage:
    # The wire has CRLF line ends; read it back as text with LF ones.
    content = content.replace(b"\r\n", b"\n")
    message = email.message_from_bytes(content, policy=email.policy.default)
    assert isinstance(message, EmailMessage)
    return message


def assert_no_pii(err: BaseException) -> None:
    assert PATIENT not in str(err) and "How was your week" not in str(err)
    assert err.__cause__ is None and (err.__context__ is None or err.__suppress_context__)


class PasswordAuthenticator:
    def __init__(self, user: str, password: str) -> None:
        self.user, self.password = user.encode(), password.encode()

    def __call__(
        self, server: SMTP, session: Session, envelope: Envelope, mechanism: str, data: Any
    ) -> AuthResult:
        ok = (
            isinstance(data, LoginPassword)
            and data.login == self.user
            and data.password == self.password
        )
        # handled=False: let aiosmtpd answer 535 itself (handled=True would send nothing).
        return AuthResult(success=ok, handled=False, auth_data=data if ok else None)


def test_it_is_an_email_channel(smtp_server: Any) -> None:
    assert isinstance(channel(smtp_server), EmailChannel)
    assert channel(smtp_server).name == "smtp"


def test_it_sends_text_and_html_alternatives_with_the_message_id(smtp_server: Any) -> None:
    result = channel(smtp_server).send_email(
        PATIENT, SUBJECT, TEXT, HTML, message_id="checkin-42@clinic.example"
    )

    [mail] = smtp_server.handler.received
    assert mail.mail_from == "noreply@clinic.example"
    assert mail.rcpt_tos == [PATIENT]
    message = parse(mail.content)
    assert message["Message-ID"] == "<checkin-42@clinic.example>"
    assert result.provider_id == "<checkin-42@clinic.example>"
    assert message["To"] == PATIENT and message["Subject"] == SUBJECT
    assert message["From"] == "Clinic <noreply@clinic.example>"
    assert message["Date"] is not None
    assert message.get_content_type() == "multipart/alternative"
    text_part = message.get_body(("plain",))
    html_part = message.get_body(("html",))
    assert text_part is not None and html_part is not None
    assert text_part.get_content() == TEXT  # the leading dot survived dot-stuffing
    assert html_part.get_content().strip() == HTML


def test_text_only_and_non_ascii_content(smtp_server: Any) -> None:
    channel(smtp_server).send_email(
        PATIENT, "Su cita — mañana", "¿Cómo está? Responda 0–10.", None, message_id="<m1@x>"
    )
    message = parse(smtp_server.handler.received[0].content)
    assert message.get_content_type() == "text/plain"
    assert message["Subject"] == "Su cita — mañana"
    assert message.get_content().replace("\r\n", "\n") == "¿Cómo está? Responda 0–10.\n"
    # Seven-bit on the wire, so servers without 8BITMIME take it too.
    assert max(smtp_server.handler.received[0].content) < 128


def test_it_logs_in_when_a_user_is_configured(smtp_server_factory: Any) -> None:
    server = smtp_server_factory(
        authenticator=PasswordAuthenticator("clinic", "s3cret"), auth_require_tls=False
    )
    channel(server, user="clinic", password="s3cret").send_email(
        PATIENT, SUBJECT, TEXT, None, message_id="<m2@x>"
    )
    assert [m.login for m in server.handler.received] == ["clinic"]


def test_a_rejected_login_is_permanent(smtp_server_factory: Any) -> None:
    server = smtp_server_factory(
        authenticator=PasswordAuthenticator("clinic", "s3cret"), auth_require_tls=False
    )
    with pytest.raises(ChannelError) as info:
        channel(server, user="clinic", password="wrong").send_email(
            PATIENT, SUBJECT, TEXT, None, message_id="<m3@x>"
        )
    assert info.value.permanent and info.value.code == "535"
    assert server.handler.received == []


def test_a_451_is_transient(smtp_server: Any) -> None:
    smtp_server.handler.data_reply = "451 4.3.0 Try again later"
    with pytest.raises(ChannelError) as info:
        channel(smtp_server).send_email(PATIENT, SUBJECT, TEXT, HTML, message_id="<m4@x>")
    assert not info.value.permanent and info.value.code == "451"
    assert_no_pii(info.value)


def test_a_550_is_permanent(smtp_server: Any) -> None:
    smtp_server.handler.rcpt_reply = f"550 5.1.1 <{PATIENT}>: Recipient address rejected"
    with pytest.raises(ChannelError) as info:
        channel(smtp_server).send_email(PATIENT, SUBJECT, TEXT, HTML, message_id="<m5@x>")
    assert info.value.permanent and info.value.code == "550"
    assert_no_pii(info.value)  # the server's reply echoes the address; ours does not


def test_a_550_after_data_is_permanent(smtp_server: Any) -> None:
    smtp_server.handler.data_reply = "554 5.7.1 Message rejected"
    with pytest.raises(ChannelError) as info:
        channel(smtp_server).send_email(PATIENT, SUBJECT, TEXT, HTML, message_id="<m6@x>")
    assert info.value.permanent and info.value.code == "554"


def test_connection_refused_is_transient(closed_port: int) -> None:
    sms = SmtpEmail("127.0.0.1", closed_port, from_addr="noreply@clinic.example", timeout=5)
    started = time.monotonic()
    with pytest.raises(ChannelError) as info:
        sms.send_email(PATIENT, SUBJECT, TEXT, None, message_id="<m7@x>")
    assert time.monotonic() - started < 2
    assert not info.value.permanent and info.value.code is None
    assert_no_pii(info.value)


def test_no_final_reply_after_the_message_was_sent_is_unknown(smtp_server: Any) -> None:
    smtp_server.handler.data_delay = 2.0
    with pytest.raises(DeliveryUnknown) as info:
        channel(smtp_server, timeout=0.5).send_email(
            PATIENT, SUBJECT, TEXT, None, message_id="<m8@x>"
        )
    assert_no_pii(info.value)


@pytest.fixture
def certificate(tmp_path: Path) -> tuple[Path, Path]:
    openssl = shutil.which("openssl")
    if openssl is None:
        pytest.skip("the openssl command is needed to make a test certificate")
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        [
            *(openssl, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1"),
            *("-keyout", str(key), "-out", str(cert), "-subj", "/CN=localhost"),
            *("-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost"),
        ],
        check=True,
        capture_output=True,
    )
    return cert, key


def test_it_upgrades_with_starttls_and_verifies_the_certificate(
    smtp_server_factory: Any, certificate: tuple[Path, Path]
) -> None:
    cert, key = certificate
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_context.load_cert_chain(cert, key)
    server = smtp_server_factory(
        tls_context=server_context,
        require_starttls=True,
        authenticator=PasswordAuthenticator("clinic", "s3cret"),
    )
    trusting = ssl.create_default_context(cafile=str(cert))
    channel(
        server, starttls=True, ssl_context=trusting, user="clinic", password="s3cret"
    ).send_email(PATIENT, SUBJECT, TEXT, HTML, message_id="<m9@x>")
    assert [m.login for m in server.handler.received] == ["clinic"]

    # Without STARTTLS the server refuses to go on; an untrusted certificate never gets a message.
    with pytest.raises(ChannelError) as info:
        channel(server).send_email(PATIENT, SUBJECT, TEXT, None, message_id="<m10@x>")
    assert info.value.permanent and info.value.code == "530"
    with pytest.raises(ChannelError) as info:
        channel(server, starttls=True).send_email(
            PATIENT, SUBJECT, TEXT, None, message_id="<m11@x>"
        )
    assert not info.value.permanent
    assert len(server.handler.received) == 1
