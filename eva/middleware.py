from __future__ import annotations

import re
import uuid
from collections.abc import Callable

from django.http import HttpRequest, HttpResponse

from eva.logging import request_id_var

_SAFE_ID = re.compile(r"^[A-Za-z0-9._-]{1,64}$")


class RequestIdMiddleware:
    """Give each request an id (or keep a sane incoming X-Request-ID) for logs and responses."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        incoming = request.headers.get("X-Request-ID", "")
        request_id = incoming if _SAFE_ID.match(incoming) else uuid.uuid4().hex
        # Not reset after the response: Django logs the response status after the middleware
        # chain returns, and that line should carry the id too. The next request overwrites it.
        request_id_var.set(request_id)
        response = self.get_response(request)
        response["X-Request-ID"] = request_id
        return response


class HealthCheckMiddleware:
    """Answer /healthz and /readyz on any host, before tenant routing and host validation.

    Load balancers and container healthchecks call these by IP or service name, which match no
    tenant domain.
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if request.path in ("/healthz", "/readyz"):
            from apps.ops import health

            return health.healthz(request) if request.path == "/healthz" else health.readyz(request)
        return self.get_response(request)
