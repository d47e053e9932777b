# Dashboard pages of this app, included under /whatsapp/.
from django.urls import path

from apps.channels import views

app_name = "channels"
urlpatterns = [
    path("", views.session_list, name="list"),
    path("<int:pk>/", views.session_detail, name="detail"),
    path("<int:pk>/status/", views.session_status, name="status"),
    path("<int:pk>/start/", views.session_start, name="start"),
    path("<int:pk>/stop/", views.session_stop, name="stop"),
    path("<int:pk>/logout/", views.session_logout, name="logout"),
]
