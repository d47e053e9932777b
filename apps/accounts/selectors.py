from __future__ import annotations

from django.db.models import QuerySet

from apps.accounts.models import ApiToken, User


def api_token_list() -> QuerySet[ApiToken]:
    return ApiToken.objects.select_related("created_by").order_by("-created_at")


def api_token_get_for_user(*, user: User, token_id: int) -> ApiToken | None:
    """Tokens are managed by owners and admins of the tenant; others see none."""
    if not user.can_manage:
        return None
    return api_token_list().filter(pk=token_id).first()


def user_list() -> QuerySet[User]:
    return User.objects.order_by("email")
