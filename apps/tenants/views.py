from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render


def landing(request: HttpRequest) -> HttpResponse:
    return render(request, "tenants/landing.html", {"base_domain": settings.EVA_BASE_DOMAIN})
