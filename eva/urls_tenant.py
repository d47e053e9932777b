"""URLs of a tenant's host (<slug>.EVA_BASE_DOMAIN): dashboard and API."""

from django.urls import include, path

urlpatterns = [
    path("api/", include("apps.api.urls")),
    path("i18n/", include("django.conf.urls.i18n")),
    path("", include("apps.dashboard.urls")),
]
