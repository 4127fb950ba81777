"""The HTTP client the Twilio SDK sends through: urllib3, a keep-alive pool shared by the send
threads, and the requests to https://api.twilio.com sent to TWILIO_API_URL instead.

The SDK has no base-URL setting (its hosts are hard-coded per domain); passing a custom
`http_client` to `Client` is its documented extension point (twilio-python
advanced-examples/custom-http-client.md; Twilio support suggests exactly this for mock endpoints
in twilio/twilio-python#521). Page URLs the SDK builds from `next_page_uri` come through here
too, so paging works against the emulator.

Why not the SDK's own TwilioHttpClient (requests): per send it costs about twice the CPU. It
asks requests to re-read the proxy and CA variables from the environment at every request
(walking all of os.environ twice), requests prepares, merges and wraps every request and
response in several layers, and the SDK formats log records that are then dropped. The bulk
worker is CPU-bound, so this is throughput. Here the environment is read once, when the channel
is built, with requests' own rules (HTTPS_PROXY/HTTP_PROXY, NO_PROXY, REQUESTS_CA_BUNDLE,
CURL_CA_BUNDLE, certifi otherwise), and the request goes straight to urllib3 (which requests
uses underneath): never retried by urllib3, because a repeated POST could send an SMS twice.
"""

from __future__ import annotations

import base64
import email.utils
import json
import os
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote_plus

import certifi
import urllib3
from requests.utils import get_environ_proxies, prepend_scheme_if_needed, select_proxy
from twilio.http import HttpClient
from twilio.http.response import Response

TWILIO_API_URL = "https://api.twilio.com"
#: Never retried (a repeated POST could send an SMS twice), never redirected: built once, where
#: `retries=False` would make urllib3 build one per request.
NO_RETRY = urllib3.Retry(total=False, redirect=False)


def _pool_manager(url: str, pool_size: int) -> urllib3.PoolManager:
    """One urllib3 pool manager for requests to `url`'s origin, configured from the
    environment as requests would configure it."""
    bundle = os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE")
    ca_certs = bundle or certifi.where()
    # num_pools: the API host, plus a proxy's; maxsize: one kept-alive connection per send
    # thread; block=False: a thread beyond it opens (and later drops) one more, never waits.
    options: dict[str, Any] = {
        "num_pools": 4,
        "maxsize": pool_size,
        "block": False,
        "cert_reqs": "CERT_REQUIRED",
        "ca_certs": ca_certs,
    }
    proxy = select_proxy(url, get_environ_proxies(url))
    if not proxy:
        return urllib3.PoolManager(**options)
    proxy = prepend_scheme_if_needed(proxy, "http")  # "proxy:3128", as requests reads it
    if proxy.lower().startswith("socks"):
        raise ValueError("a SOCKS proxy for Twilio is not supported: use an HTTP(S) proxy")
    parsed = urllib3.util.parse_url(proxy)
    headers = urllib3.make_headers(proxy_basic_auth=parsed.auth) if parsed.auth else None
    return urllib3.ProxyManager(proxy, proxy_headers=headers, **options)


class Transport:
    """What every thread's HTTP client of one channel shares: the connection pool. urllib3's
    pool manager is thread-safe; connections are kept alive between sends."""

    def __init__(self, api_url: str, *, pool_size: int) -> None:
        self.api_url = api_url.rstrip("/")
        self.manager = _pool_manager(self.api_url, max(pool_size, 1))

    def close(self) -> None:
        """Close the pooled connections; the transport stays usable (it reconnects)."""
        self.manager.clear()


class ApiUrlHttpClient(HttpClient):  # type: ignore[misc]
    """An SDK `HttpClient` over a shared `Transport`, for one thread.

    It remembers the Retry-After of the last 429, which TwilioRestException drops: one instance
    per thread (see TwilioSms), so that attribute is never shared. Nothing is logged: the SDK's
    request log has the recipient's number in list URLs.

    Raises urllib3's exceptions (`urllib3.exceptions.HTTPError` and subclasses) when no answer
    came; TwilioSms classifies them.
    """

    def __init__(self, transport: Transport, *, timeout: float) -> None:
        super().__init__(None, False, timeout)
        self.transport = transport
        self.last_retry_after: float | None = None
        self._timeout = urllib3.Timeout(connect=timeout, read=timeout)
        self._auth: tuple[str, str] | None = None
        self._auth_header = ""

    def _authorization(self, auth: tuple[str, str]) -> str:
        # Built once per credentials, not per request.
        if auth != self._auth:
            token = base64.b64encode(f"{auth[0]}:{auth[1]}".encode()).decode("ascii")
            self._auth, self._auth_header = auth, f"Basic {token}"
        return self._auth_header

    def request(
        self,
        method: str,
        url: str,
        params: dict[str, object] | None = None,
        data: dict[str, object] | None = None,
        headers: dict[str, str] | None = None,
        auth: tuple[str, str] | None = None,
        timeout: float | None = None,
        allow_redirects: bool = False,
    ) -> Response:
        api_url = self.transport.api_url
        if api_url != TWILIO_API_URL and (
            url == TWILIO_API_URL or url.startswith(TWILIO_API_URL + "/")
        ):
            url = api_url + url[len(TWILIO_API_URL) :]
        if params:
            url += ("&" if "?" in url else "?") + _form(params)
        if timeout is not None and timeout <= 0:
            raise ValueError(timeout)
        send_headers = dict(headers or {})
        if auth is not None:
            send_headers["Authorization"] = self._authorization(auth)
        body: str | None = None
        if data is not None:
            content_type = send_headers.get("Content-Type")
            if content_type in ("application/json", "application/scim+json"):
                body = json.dumps(data)
            else:
                body = _form(data)
                send_headers.setdefault("Content-Type", "application/x-www-form-urlencoded")
        self.last_retry_after = None
        response = self.transport.manager.request(
            method.upper(),
            url,
            body=body,
            headers=send_headers,
            timeout=(
                self._timeout if timeout is None else urllib3.Timeout(connect=timeout, read=timeout)
            ),
            redirect=allow_redirects,
            retries=NO_RETRY if not allow_redirects else False,
        )
        if response.status == 429:
            self.last_retry_after = parse_retry_after(response.headers)
        return Response(int(response.status), _text(response), response.headers)


# quote_plus for ASCII text as one str.translate: the letters, digits and "_.-~" stay, a space
# is "+", any other character is %XX. It runs for every field of every message on the send
# path, where urlencode's per-character work showed; non-ASCII text still goes through
# quote_plus (UTF-8), so the bytes are the same (tests/unit/test_twilio_form.py).
_FORM_SAFE = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_.-~")
_FORM_ASCII: dict[int, str] = {
    c: chr(c) if chr(c) in _FORM_SAFE else f"%{c:02X}" for c in range(128)
}
_FORM_ASCII[ord(" ")] = "+"


def _quote(text: str) -> str:
    return text.translate(_FORM_ASCII) if text.isascii() else quote_plus(text)


def _form(values: Mapping[str, object]) -> str:
    """Form-encode as requests does (urlencode with quote_plus): lists repeat the field, None
    values are left out."""
    pairs: list[str] = []
    for key, value in values.items():
        items: Iterable[object] = (
            value if isinstance(value, list | tuple) else (value,)  # a str is one value
        )
        name = _quote(key)
        pairs.extend(f"{name}={_quote(_str(v))}" for v in items if v is not None)
    return "&".join(pairs)


def _str(value: object) -> str:
    return value.decode("utf-8") if isinstance(value, bytes) else str(value)


def _text(response: urllib3.BaseHTTPResponse) -> str:
    # Twilio answers JSON: UTF-8 unless the Content-Type says otherwise (as requests reads it).
    charset = "utf-8"
    for part in (response.headers.get("Content-Type") or "").split(";")[1:]:
        name, _, value = part.strip().partition("=")
        if name.lower() == "charset" and value:
            charset = value.strip("\"'")
    try:
        return response.data.decode(charset, errors="replace")
    except LookupError:
        return response.data.decode("utf-8", errors="replace")


def parse_retry_after(headers: Any) -> float | None:
    """Seconds from a Retry-After header (delta-seconds or an HTTP date), or None."""
    value = headers.get("Retry-After") if headers is not None else None
    if not value:
        return None
    value = str(value).strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max((when - datetime.now(UTC)).total_seconds(), 0.0)
