"""Build the configured channels from Settings (never at import time)."""

from __future__ import annotations

from typing import TextIO

from worker.channels import Channels, EmailChannel, SmsChannel
from worker.channels.console import ConsoleEmail, ConsoleSms
from worker.config import ConfigError, Settings


def build_channels(settings: Settings, *, stream: TextIO | None = None) -> Channels:
    """The SMS and email channels `settings` asks for.

    `stream` is where the console backends print (default: sys.stdout at each send). The Twilio
    SDK is imported only when the Twilio backend is chosen, so commands that send nothing stay
    quick to start. Raises ConfigError (one line naming the variable) for missing credentials,
    although Settings validation normally catches them first.
    """
    sms: SmsChannel
    if settings.sms_backend == "twilio":
        from worker.channels.twilio_sms import TwilioSms

        if not settings.twilio_account_sid or settings.twilio_auth_token is None:
            raise ConfigError(
                "TWILIO_ACCOUNT_SID and TWILIO_AUTH_TOKEN are required when "
                "CHECKIN_SMS_BACKEND=twilio"
            )
        sms = TwilioSms(
            settings.twilio_account_sid,
            settings.twilio_auth_token.get_secret_value(),
            from_number=settings.twilio_from_number,
            messaging_service_sid=settings.twilio_messaging_service_sid,
            api_url=settings.twilio_api_url,
            timeout=settings.twilio_timeout_seconds,
            # One kept-alive connection per send thread, plus a few for the task threads
            # (urgent sends, reconciliation) that call the channel directly.
            pool_size=settings.send_concurrency + 4,
        )
    else:
        sms = ConsoleSms(stream, clock=settings.now)

    email: EmailChannel
    if settings.email_backend == "smtp":
        from worker.channels.smtp_email import SmtpEmail

        if not settings.email_from:
            raise ConfigError("CHECKIN_EMAIL_FROM: required when CHECKIN_EMAIL_BACKEND=smtp")
        email = SmtpEmail(
            settings.smtp_host,
            settings.smtp_port,
            from_addr=settings.email_from,
            user=settings.smtp_user,
            password=(
                settings.smtp_password.get_secret_value() if settings.smtp_password else None
            ),
            starttls=settings.smtp_starttls,
            timeout=settings.smtp_timeout_seconds,
        )
    else:
        email = ConsoleEmail(stream, clock=settings.now)
    return Channels(sms=sms, email=email)
