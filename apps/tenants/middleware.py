from __future__ import annotations

from collections.abc import Callable

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render


class ActiveTenantMiddleware:
    """A deactivated tenant's hosts answer 403 with an explanation; its data stays intact."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        tenant = getattr(request, "tenant", None)
        if tenant is not None and not getattr(tenant, "is_active", True):
            return render(request, "tenants/inactive.html", {"tenant": tenant}, status=403)
        return self.get_response(request)
