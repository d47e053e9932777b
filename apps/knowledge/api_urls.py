# Routes of this app under /api/v1/.
from django.urls import URLPattern, path

from apps.knowledge import api

urlpatterns: list[URLPattern] = [
    path("documents/", api.DocumentListUpload.as_view(), name="document-list"),
    path("documents/search/", api.DocumentSearch.as_view(), name="document-search"),
    path("documents/<int:document_id>/", api.DocumentDetail.as_view(), name="document-detail"),
    path("documents/<int:document_id>/retry/", api.DocumentRetry.as_view(), name="document-retry"),
    path(
        "documents/<int:document_id>/chunks/", api.DocumentChunks.as_view(), name="document-chunks"
    ),
]
