from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

from apps.api import views

# Later issues add their routes to this list (agents, documents, conversations, ...).
v1 = [
    path("", views.ApiRoot.as_view(), name="root"),
    path("me/", views.MeView.as_view(), name="me"),
    path("tokens/", views.ApiTokenListCreate.as_view(), name="token-list"),
    path("tokens/<int:token_id>/revoke/", views.ApiTokenRevoke.as_view(), name="token-revoke"),
]

app_name = "api"
urlpatterns = [
    path("v1/", include((v1, "v1"))),
    path("schema/", SpectacularAPIView.as_view(), name="schema"),
    path("docs/", SpectacularSwaggerView.as_view(url_name="api:schema"), name="docs"),
]
