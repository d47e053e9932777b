"""Error pages: the API's JSON error body under /api/, a page in the dashboard's look elsewhere.

Set as handler403/handler404/handler500 in both URL configurations (tenant hosts and the
public host); with DEBUG on, Django shows its own technical pages for 404 and 500 instead.
"""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render
from django.template.loader import render_to_string
from django.utils.translation import gettext as _


def _is_api(request: HttpRequest) -> bool:
    return request.path.startswith("/api/")


def forbidden(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    if _is_api(request):
        body = {
            "status": 403,
            "code": "permission_denied",
            "message": _("You do not have permission to perform this action."),
        }
        return JsonResponse({"error": body}, status=403)
    # The views' PermissionDenied says who may do it ("Only owners and admins manage agents.").
    reason = str(exception or "")
    return render(request, "403.html", {"reason": reason}, status=403)


def not_found(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    if _is_api(request):
        body = {"status": 404, "code": "not_found", "message": _("No such API endpoint.")}
        return JsonResponse({"error": body}, status=404)
    return render(request, "404.html", status=404)


def server_error(request: HttpRequest) -> HttpResponse:
    if _is_api(request):
        body = {"status": 500, "code": "server_error", "message": _("Internal server error.")}
        return JsonResponse({"error": body}, status=500)
    # Standalone (no base template, no context processors): whatever failed may fail again.
    return HttpResponse(render_to_string("500.html"), status=500)
