"""Where a webhook may go, and one signed POST to it.

A tenant chooses the URL, and EVA's server makes the request: without care that is a way into
the services next to EVA (its database, Redis, the cloud's metadata address). So the address is
checked when an endpoint is saved and again at every send, and the connection goes to the very
address that was checked (a name that resolved to a public address when checked and to a private
one a second later — DNS rebinding — gets nowhere). TLS still verifies the certificate against
the URL's host name.

Signature: ``X-EVA-Signature: sha256=<hex>`` is HMAC-SHA256, keyed with the endpoint's secret,
of ``<X-EVA-Timestamp>.<body>`` (docs/webhooks.md shows how to check it).
"""

from __future__ import annotations

import hashlib
import hmac
import http.client
import ipaddress
import socket
import ssl
import time
from dataclasses import dataclass
from urllib.parse import urlsplit

from django.conf import settings
from django.utils.translation import gettext as _

USER_AGENT = "EVA-Webhooks/1"
# What is kept of a receiver's answer for the dashboard (an error page can be long).
_ANSWER_KEPT = 200


class TargetRefused(ValueError):
    """The URL is not one EVA posts to (the message says why, for the person who entered it)."""


class TargetUnresolved(TargetRefused):
    """The host name does not resolve (now: it may again later)."""


@dataclass(frozen=True)
class Target:
    scheme: str
    host: str
    port: int
    path: str  # path and query, as sent
    address: str  # the checked IP address the connection goes to


@dataclass(frozen=True)
class Answer:
    status: int | None  # None: no HTTP answer at all
    error: str  # "" when the receiver answered 2xx
    retry: bool  # worth another attempt later


def _allowed(address: str) -> bool:
    ip = ipaddress.ip_address(address)
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return ip.is_global or bool(settings.EVA_WEBHOOK_ALLOW_PRIVATE)


def target_check(url: str) -> Target:
    """The parsed, resolved target of ``url``; raises TargetRefused with a reason."""
    parts = urlsplit(url.strip())
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https"):
        raise TargetRefused(_("Use an https:// address."))
    if scheme == "http" and not settings.EVA_WEBHOOK_ALLOW_HTTP:
        raise TargetRefused(_("Use an https:// address: events carry your customers' details."))
    if parts.username or parts.password:
        raise TargetRefused(_("Put no user name or password in the address."))
    host = parts.hostname
    if not host:
        raise TargetRefused(_("The address has no host name."))
    try:
        port = parts.port or (443 if scheme == "https" else 80)
    except ValueError as exc:
        raise TargetRefused(_("The address has an invalid port.")) from exc
    try:
        found = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as exc:
        raise TargetUnresolved(
            _("The host name %(host)s does not resolve.") % {"host": host}
        ) from exc
    addresses = [str(info[4][0]) for info in found]
    # Every address the name has must be allowed: the client may connect to any of them.
    if not addresses or not all(_allowed(address) for address in addresses):
        raise TargetRefused(
            _("%(host)s is a private or local address; webhooks go to public addresses only.")
            % {"host": host}
        )
    path = parts.path or "/"
    if parts.query:
        path = f"{path}?{parts.query}"
    return Target(scheme=scheme, host=host, port=port, path=path, address=addresses[0])


class _PinnedHTTPConnection(http.client.HTTPConnection):
    """Connects to the checked address; the Host header still names the URL's host."""

    def __init__(self, target: Target, timeout: float) -> None:
        super().__init__(target.host, target.port, timeout=timeout)
        self._address = target.address

    def connect(self) -> None:
        self.sock = socket.create_connection((self._address, self.port), self.timeout)


class _PinnedHTTPSConnection(http.client.HTTPSConnection):
    """Connects to the checked address and verifies the certificate against the host name."""

    def __init__(self, target: Target, timeout: float) -> None:
        context = ssl.create_default_context()
        super().__init__(target.host, target.port, timeout=timeout, context=context)
        self._address = target.address
        self._tls = context

    def connect(self) -> None:
        sock = socket.create_connection((self._address, self.port), self.timeout)
        self.sock = self._tls.wrap_socket(sock, server_hostname=self.host)


def sign(secret: str, timestamp: str, body: bytes) -> str:
    digest = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256)
    return "sha256=" + digest.hexdigest()


def post(*, url: str, secret: str, event: str, event_id: str, body: bytes) -> Answer:
    """POST ``body`` to ``url``, signed; what came back, and whether trying again may help."""
    try:
        target = target_check(url)
    except TargetRefused as exc:
        # A name that stopped resolving may come back; one that now names a private address
        # is refused for good.
        return Answer(status=None, error=str(exc), retry=isinstance(exc, TargetUnresolved))
    timestamp = str(int(time.time()))
    headers = {
        "Content-Type": "application/json",
        "User-Agent": USER_AGENT,
        "X-EVA-Event": event,
        "X-EVA-Event-Id": event_id,
        "X-EVA-Timestamp": timestamp,
        "X-EVA-Signature": sign(secret, timestamp, body),
    }
    timeout = float(settings.EVA_WEBHOOK_TIMEOUT)
    connection: http.client.HTTPConnection = (
        _PinnedHTTPSConnection(target, timeout)
        if target.scheme == "https"
        else _PinnedHTTPConnection(target, timeout)
    )
    try:
        connection.request("POST", target.path, body=body, headers=headers)
        response = connection.getresponse()
        answer = response.read(_ANSWER_KEPT).decode("utf-8", "replace").strip()
    except ssl.SSLError as exc:
        return Answer(status=None, error=f"TLS: {exc.reason or exc}"[:300], retry=True)
    except (OSError, http.client.HTTPException) as exc:
        reason = "timed out" if isinstance(exc, TimeoutError) else str(exc) or type(exc).__name__
        return Answer(status=None, error=f"no answer: {reason}"[:300], retry=True)
    finally:
        connection.close()
    status = response.status
    if 200 <= status < 300:
        return Answer(status=status, error="", retry=False)
    detail = f"HTTP {status}" + (f": {answer}" if answer else "")
    if 300 <= status < 400:
        detail = f"HTTP {status}: redirects are not followed; enter the final address"
    # The receiver is busy or broken for now (5xx, 408, 429); any other 4xx says this request is
    # wrong for it, and sending the same bytes again would get the same answer.
    retry = status >= 500 or status in (408, 425, 429)
    return Answer(status=status, error=detail[:300], retry=retry)
