"""Who is calling: the client's address, also behind the production proxy."""

from __future__ import annotations

import ipaddress

from django.http import HttpRequest


def client_address(request: HttpRequest) -> str:
    """The client's address. Behind Traefik (a proxy on a private network) it is the last
    address of X-Forwarded-For — the one Traefik appended, which a client cannot forge."""
    peer = request.META.get("REMOTE_ADDR", "")
    forwarded = [a.strip() for a in request.META.get("HTTP_X_FORWARDED_FOR", "").split(",")]
    try:
        behind_proxy = ipaddress.ip_address(peer).is_private
    except ValueError:
        behind_proxy = False
    if behind_proxy and forwarded and forwarded[-1]:
        return forwarded[-1]
    return peer
