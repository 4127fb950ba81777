"""Per-request access plumbing: who is calling (for the audit trail) and the security headers
every response needs.

- Binds an `audit.Who` for the request (address from the ASGI peer; the API's token check and
  the dashboard's session check fill in the principal), so every audit row written while the
  request runs names who and from where.
- `Cache-Control: no-store` on every /api response (they carry health information).
- `Strict-Transport-Security` on every response when CHECKIN_PUBLIC_URL is https.
"""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client.core import CounterMetricFamily, Metric
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from worker.services.records import audit
from worker.services.runtime import Runtime

HSTS = b"max-age=31536000; includeSubDomains"


class AccessContext:
    def __init__(self, app: ASGIApp, *, https: bool) -> None:
        self.app = app
        self.https = https

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path: str = scope.get("path", "")
        is_api = path.startswith("/api/")
        client = scope.get("client")
        who = audit.Who(
            actor="anonymous",
            via="api" if is_api else "web",
            address=(str(client[0]) if client else "unknown")[:64],
        )

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = [
                    (k, v)
                    for k, v in message.get("headers", [])
                    if not (is_api and k.lower() == b"cache-control")
                ]
                if is_api:
                    headers.append((b"cache-control", b"no-store"))
                if self.https:
                    headers.append((b"strict-transport-security", HSTS))
                message["headers"] = headers
            await send(message)

        with audit.acting(who):
            await self.app(scope, receive, with_headers)


class SignInCollector:
    """`checkin_signin_failures_total{reason}`: refused sign-in attempts since the installation
    began (from the database, so every web process reports the same count)."""

    REASONS = ("password", "unknown_account", "disabled", "second_factor", "backoff", "locked",
               "address")  # fmt: skip

    def __init__(self, rt: Runtime) -> None:
        self.rt = rt

    def collect(self) -> Iterator[Metric]:
        from worker.services.records.signin_throttle import failures_by_reason

        with self.rt.sessions() as session:
            counts = failures_by_reason(session)
        family = CounterMetricFamily(
            "checkin_signin_failures",
            "Refused dashboard sign-in attempts, by reason",
            labels=["reason"],
        )
        for reason in sorted(set(self.REASONS) | set(counts)):
            family.add_metric([reason], counts.get(reason, 0))
        yield family
