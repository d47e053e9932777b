# Dashboard pages of this app, included under /knowledge/.
from django.urls import URLPattern, path

from apps.knowledge import views

app_name = "knowledge"
urlpatterns: list[URLPattern] = [
    path("", views.document_list_view, name="list"),
    path("rows/", views.document_rows_view, name="rows"),
    path("<int:document_id>/", views.document_detail_view, name="detail"),
    path("<int:document_id>/file/", views.document_file_view, name="file"),
    path("<int:document_id>/status/", views.document_status_view, name="status"),
    path("<int:document_id>/retry/", views.document_retry_view, name="retry"),
    path("<int:document_id>/delete/", views.document_delete_view, name="delete"),
]
