from django.contrib.auth import views as auth_views
from django.urls import path

from apps.dashboard import views

app_name = "dashboard"
urlpatterns = [
    path("", views.home, name="home"),
    path("login/", views.LoginView.as_view(), name="login"),
    path("logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("settings/api-tokens/", views.api_tokens, name="api-tokens"),
    path("settings/team/", views.team, name="team"),
    path("settings/team/<int:user_id>/", views.team_member, name="team-member"),
    path("settings/password/", views.PasswordChangeView.as_view(), name="password"),
    path(
        "settings/api-tokens/<int:token_id>/revoke/",
        views.api_token_revoke_view,
        name="api-token-revoke",
    ),
]
