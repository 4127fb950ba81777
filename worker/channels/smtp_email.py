"""Email over SMTP with the standard library.

One connection per message: check-in and reminder mail is low-volume, servers drop idle
connections anyway, a shared connection would need a lock (serialising every sender thread) and
reconnect logic, and a fresh session per message makes every reply code belong to that message.

Classification: a 4xx reply or a connection that failed before the message was handed over is
transient; a 5xx reply is permanent (`code` is the reply code); a timeout or disconnect after the
whole message was sent and before the server's final reply is `DeliveryUnknown` (the server may
already have queued it). Messages never carry addresses, bodies or the server's reply text
(which often echoes the address).
"""

from __future__ import annotations

import re
import smtplib
import ssl
from collections.abc import Mapping
from email.message import EmailMessage
from email.policy import SMTP as SMTP_POLICY
from email.utils import formatdate, parseaddr

from worker.channels import ChannelError, DeliveryUnknown, SendResult

# CRLF line ends; 7-bit transfer encodings (quoted-printable/base64 for non-ASCII text), so the
# message is valid on servers without 8BITMIME; non-ASCII headers are RFC 2047-encoded.
_POLICY = SMTP_POLICY.clone(cte_type="7bit")
_LEADING_DOT = re.compile(rb"(?m)^\.")


class SmtpEmail:
    """EmailChannel over SMTP (optionally STARTTLS and AUTH)."""

    name = "smtp"

    def __init__(
        self,
        host: str,
        port: int,
        *,
        from_addr: str,
        user: str | None = None,
        password: str | None = None,
        starttls: bool = False,
        timeout: float = 15.0,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        self.host = host
        self.port = port
        self.from_addr = from_addr
        self.user = user
        self._password = password
        self.starttls = starttls
        self.timeout = timeout
        # None: the system's trusted CAs with hostname checking (ssl.create_default_context).
        self.ssl_context = ssl_context

    def build_message(
        self,
        to: str,
        subject: str,
        text: str,
        html: str | None,
        *,
        message_id: str,
        headers: Mapping[str, str] | None = None,
    ) -> EmailMessage:
        """The MIME message: text/plain, plus text/html as an alternative when given."""
        msg = EmailMessage(policy=_POLICY)
        msg["From"] = self.from_addr
        msg["To"] = to
        msg["Subject"] = subject
        msg["Date"] = formatdate(usegmt=True)
        msg["Message-ID"] = message_id if message_id.startswith("<") else f"<{message_id}>"
        for name, value in (headers or {}).items():
            msg[name] = value
        msg.set_content(text)
        if html is not None:
            msg.add_alternative(html, subtype="html")
        return msg

    def send_email(
        self,
        to: str,
        subject: str,
        text: str,
        html: str | None,
        *,
        message_id: str,
        headers: Mapping[str, str] | None = None,
    ) -> SendResult:
        """Send one email. Returns the Message-ID as provider_id.

        Raises ChannelError (permanent for 5xx replies and unusable input) or DeliveryUnknown.
        """
        try:
            msg = self.build_message(
                to, subject, text, html, message_id=message_id, headers=headers
            )
            payload = msg.as_bytes()
            sender = parseaddr(self.from_addr)[1]
            recipient = parseaddr(to)[1]
            sender.encode("ascii")
            recipient.encode("ascii")
        except (ValueError, UnicodeError):
            raise ChannelError(
                "SMTP: the message or an address cannot be encoded", permanent=True
            ) from None
        if not recipient:
            raise ChannelError("SMTP: no recipient address", permanent=True)

        # Dot-stuffing and the terminating "." (RFC 5321 4.5.2), as smtplib.data() does.
        data = _LEADING_DOT.sub(b"..", payload)
        if not data.endswith(b"\r\n"):
            data += b"\r\n"
        data += b".\r\n"

        handed_over = False
        conn: smtplib.SMTP | None = None
        try:
            conn = smtplib.SMTP(self.host, self.port, timeout=self.timeout)
            conn.ehlo_or_helo_if_needed()
            if self.starttls:
                conn.starttls(context=self.ssl_context or ssl.create_default_context())
                conn.ehlo()
            if self.user:
                conn.login(self.user, self._password or "")
            _expect(conn.mail(sender), (250,), "sender")
            _expect(conn.rcpt(recipient), (250, 251), "recipient")
            _expect(conn.docmd("DATA"), (354,), "DATA")
            conn.send(data)
            # From here the server holds the whole message: silence is not a failure.
            handed_over = True
            _expect(conn.getreply(), (250,), "message")
        except ChannelError:
            raise
        except smtplib.SMTPResponseException as exc:  # refused connect greeting, AUTH
            raise _reply_error(exc.smtp_code, "server") from None
        except smtplib.SMTPNotSupportedError:
            raise ChannelError(
                "SMTP: the server does not support STARTTLS or AUTH as configured",
                permanent=True,
            ) from None
        except (smtplib.SMTPServerDisconnected, OSError) as exc:
            if handed_over:
                raise DeliveryUnknown(
                    "SMTP: no final reply after the message was sent; it may have been queued"
                ) from None
            kind = "timed out" if isinstance(exc, TimeoutError) else "connection failed"
            raise ChannelError(
                f"SMTP: {kind} before the message was sent", permanent=False
            ) from None
        except smtplib.SMTPException:  # e.g. no AUTH mechanism in common
            raise ChannelError(
                "SMTP: the session could not be set up as configured", permanent=True
            ) from None
        finally:
            if conn is not None:
                _close(conn)
        return SendResult(provider_id=msg["Message-ID"], segments=None, status="sent")


def _expect(reply: tuple[int, bytes], ok: tuple[int, ...], stage: str) -> None:
    code = reply[0]
    if code not in ok:
        raise _reply_error(code, stage)


def _reply_error(code: int, stage: str) -> ChannelError:
    if 500 <= code <= 599:
        return ChannelError(f"SMTP: {stage} refused ({code})", permanent=True, code=str(code))
    # 4xx is "try again later"; anything stranger (-1 for a garbled reply) is treated alike.
    return ChannelError(
        f"SMTP: {stage} temporarily refused ({code})", permanent=False, code=str(code)
    )


def _close(conn: smtplib.SMTP) -> None:
    try:
        conn.quit()
    except (smtplib.SMTPException, OSError):
        conn.close()
