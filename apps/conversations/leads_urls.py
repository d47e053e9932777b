# The leads pages, included under /leads/.
from django.urls import path

from apps.conversations import views

app_name = "leads"
urlpatterns = [
    path("", views.lead_list_view, name="list"),
    path("export.csv", views.lead_export_view, name="export"),
]
