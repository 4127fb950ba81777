"""Inbound SMS webhooks as Twilio sends them: form-encoded, signed with X-Twilio-Signature
over CHECKIN_PUBLIC_URL + path; and the web app (`python -m worker.cli web`) to receive them."""

from __future__ import annotations

import http.client
import json
import time
import urllib.parse
import urllib.request
import uuid
from dataclasses import dataclass

from twilio.request_validator import RequestValidator

from bench.harness import CLINIC_NUMBER, Stack, free_port, wait_for

PATH = "/webhooks/twilio/sms"


@dataclass(frozen=True)
class Signed:
    body: bytes
    headers: dict[str, str]
    sid: str


def signed_inbound(public_url: str, auth_token: str, sender: str, text: str) -> Signed:
    sid = "SM" + uuid.uuid4().hex
    params = {
        "ToCountry": "US",
        "SmsMessageSid": sid,
        "NumMedia": "0",
        "SmsSid": sid,
        "SmsStatus": "received",
        "Body": text,
        "FromCountry": "US",
        "To": CLINIC_NUMBER,
        "NumSegments": "1",
        "MessageSid": sid,
        "AccountSid": "ACaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
        "From": sender,
        "ApiVersion": "2010-04-01",
    }
    signature = RequestValidator(auth_token).compute_signature(public_url + PATH, params)
    return Signed(
        urllib.parse.urlencode(params).encode(),
        {
            "Content-Type": "application/x-www-form-urlencoded; charset=utf-8",
            "X-Twilio-Signature": signature,
            "User-Agent": "TwilioProxy/1.1",
        },
        sid,
    )


class Client:
    """One keep-alive connection to the web app (one per thread)."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)

    def post(self, req: Signed) -> int:
        try:
            self.conn.request("POST", PATH, req.body, req.headers)
            resp = self.conn.getresponse()
            resp.read()
            return resp.status
        except (OSError, http.client.HTTPException):
            self.conn.close()
            self.conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
            return 0

    def close(self) -> None:
        self.conn.close()


def start_web(st: Stack) -> tuple[int, str]:
    """The web app on a free port; returns (port, public URL) once /healthz answers 200."""
    port = free_port()
    public = f"http://127.0.0.1:{port}"
    env = {**st.procs.env, "CHECKIN_PUBLIC_URL": public}
    st.procs.start("web", ["-m", "worker.cli", "web", "--port", str(port)], env=env)

    def healthy() -> bool:
        st.procs.check_alive()
        try:
            with urllib.request.urlopen(public + "/healthz", timeout=2) as resp:
                return bool(json.loads(resp.read()).get("status") == "ok")
        except OSError:
            return False

    wait_for(healthy, 60, "the web app's /healthz", every=0.2)
    time.sleep(0.2)
    return port, public
