"""Self-service sign-up on the public host: who may, how often, and where the new workspace is."""

from __future__ import annotations

import logging
from urllib.parse import urlencode

from django.conf import settings
from django.core.cache import cache
from django.http import HttpRequest
from django.utils import timezone

from eva.clients import client_address

logger = logging.getLogger(__name__)


def rate_key(address: str) -> str:
    """The cache key counting this hour's sign-ups from ``address``."""
    return f"signup:{address}:{timezone.now():%Y%m%d%H}"


def signup_allowed(request: HttpRequest) -> bool:
    """Count one sign-up for this client address in the current hour; False once over
    EVA_SIGNUP_PER_HOUR (then nothing is created)."""
    key = rate_key(client_address(request))
    try:
        cache.add(key, 0, timeout=3600)
        return cache.incr(key) <= settings.EVA_SIGNUP_PER_HOUR
    except Exception:
        # Redis down: the count is skipped rather than every sign-up refused (the rest of the
        # sign-up needs only the database).
        logger.warning("sign-up not counted (cache unreachable)", exc_info=True)
        return True


def workspace_login_url(
    request: HttpRequest, slug: str, query: dict[str, object] | None = None
) -> str:
    """A workspace's login page, on the same scheme and port as this request."""
    scheme = "https" if request.is_secure() else "http"
    port = request.get_port()
    default = "443" if scheme == "https" else "80"
    host = f"{slug}.{settings.EVA_BASE_DOMAIN}" + ("" if port == default else f":{port}")
    return f"{scheme}://{host}/login/" + (f"?{urlencode(query)}" if query else "")
