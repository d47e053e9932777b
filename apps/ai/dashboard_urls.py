# Dashboard pages of this app, included under /usage/.
from django.urls import path

from . import views

app_name = "ai"
urlpatterns = [
    path("", views.usage, name="usage"),
    path("keys/", views.key_set, name="key-set"),
    path("keys/<str:provider>/delete/", views.key_delete, name="key-delete"),
    path("budget/", views.budget_update, name="budget"),
]
