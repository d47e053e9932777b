from django.urls import URLPattern, URLResolver, include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

from apps.api import views

# Each domain app owns its API routes (apps/<app>/api_urls.py), mounted at /api/v1/.
v1: list[URLPattern | URLResolver] = [
    path("", views.ApiRoot.as_view(), name="root"),
    path("me/", views.MeView.as_view(), name="me"),
    path("tokens/", views.ApiTokenListCreate.as_view(), name="token-list"),
    path("tokens/<int:token_id>/revoke/", views.ApiTokenRevoke.as_view(), name="token-revoke"),
    path("", include("apps.ai.api_urls")),
    path("", include("apps.knowledge.api_urls")),
    path("", include("apps.conversations.api_urls")),
    path("", include("apps.agents.api_urls")),
    path("", include("apps.channels.api_urls")),
    path("", include("apps.webhooks.api_urls")),
]

app_name = "api"
urlpatterns = [
    path("v1/", include((v1, "v1"))),
    path("schema/", SpectacularAPIView.as_view(), name="schema"),
    path("docs/", SpectacularSwaggerView.as_view(url_name="api:schema"), name="docs"),
]
