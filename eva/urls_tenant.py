"""URLs of a tenant's host (<slug>.EVA_BASE_DOMAIN): dashboard and API."""

from django.urls import include, path

# Each domain app owns its dashboard pages (apps/<app>/dashboard_urls.py) under its prefix.
urlpatterns = [
    path("api/", include("apps.api.urls")),
    path("i18n/", include("django.conf.urls.i18n")),
    path("agents/", include("apps.agents.dashboard_urls")),
    path("knowledge/", include("apps.knowledge.dashboard_urls")),
    path("inbox/", include("apps.conversations.dashboard_urls")),
    path("leads/", include("apps.conversations.leads_urls")),
    path("whatsapp/", include("apps.channels.dashboard_urls")),
    path("usage/", include("apps.ai.dashboard_urls")),
    path("settings/webhooks/", include("apps.webhooks.dashboard_urls")),
    path("", include("apps.dashboard.urls")),
]

handler403 = "eva.errors.forbidden"
handler404 = "eva.errors.not_found"
handler500 = "eva.errors.server_error"
