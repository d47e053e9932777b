"""URLs of the public schema: landing page and platform-staff admin (health is middleware)."""

from django.contrib import admin
from django.urls import include, path

from apps.tenants import views

urlpatterns = [
    path("", views.landing, name="landing"),
    path("signup/", views.signup, name="signup"),
    path("admin/", admin.site.urls),
    path("i18n/", include("django.conf.urls.i18n")),
]

handler403 = "eva.errors.forbidden"
handler404 = "eva.errors.not_found"
handler500 = "eva.errors.server_error"
