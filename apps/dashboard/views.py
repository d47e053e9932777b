from __future__ import annotations

from typing import Any

from django.contrib import messages
from django.contrib.auth import views as auth_views
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils.translation import gettext as _
from django.views.decorators.http import require_POST

from apps.accounts.models import User
from apps.accounts.selectors import api_token_get_for_user, api_token_list, user_list
from apps.accounts.services import (
    api_token_create,
    api_token_revoke,
    member_add,
    member_password_reset,
    member_update,
)
from apps.dashboard.forms import ApiTokenForm, LoginForm, MemberForm

_NEW_KEY = "dashboard:new_api_key"
_NEW_PASSWORD = "dashboard:new_member_password"  # noqa: S105 - a session key, not a password


class LoginView(auth_views.LoginView):
    template_name = "dashboard/login.html"
    authentication_form = LoginForm
    redirect_authenticated_user = True

    def get_initial(self) -> dict[str, Any]:
        # A new workspace's owner arrives from sign-up with their email in the address.
        return {"username": self.request.GET.get("email", "")[:254]}


@login_required
def home(request: HttpRequest) -> HttpResponse:
    return render(request, "dashboard/home.html", {"tenant": request.tenant})  # type: ignore[attr-defined]


def _require_manager(request: HttpRequest) -> None:
    if not request.user.can_manage:  # type: ignore[union-attr]
        raise PermissionDenied(_("Only owners and admins manage API tokens."))


@login_required
def api_tokens(request: HttpRequest) -> HttpResponse:
    _require_manager(request)
    form = ApiTokenForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        _token, raw_key = api_token_create(
            created_by=request.user,  # type: ignore[arg-type]
            name=form.cleaned_data["name"],
        )
        # Post/redirect/get: a reload must not create a second token. The key rides in the
        # session only until the next page view, which pops it, so it is shown exactly once.
        request.session[_NEW_KEY] = raw_key
        messages.success(request, _("Token created. Copy it now: it will not be shown again."))
        return redirect("dashboard:api-tokens")
    new_key = request.session.pop(_NEW_KEY, None)
    context = {"form": form, "tokens": api_token_list(), "new_key": new_key}
    return render(request, "dashboard/api_tokens.html", context)


@login_required
@require_POST
def api_token_revoke_view(request: HttpRequest, token_id: int) -> HttpResponse:
    _require_manager(request)
    token = api_token_get_for_user(user=request.user, token_id=token_id)  # type: ignore[arg-type]
    if token is None:
        raise Http404
    api_token_revoke(token=token)
    if request.htmx:  # type: ignore[attr-defined]
        return render(request, "dashboard/_api_token_row.html", {"token": token})
    messages.info(request, _("Token revoked."))
    return redirect("dashboard:api-tokens")


# --- the team ----------------------------------------------------------------------------------


def _roles_for(user: User) -> list[tuple[str, str]]:
    """The roles ``user`` may give: owners any, admins sales staff only."""
    given = User.Role if user.role == User.Role.OWNER else [User.Role.STAFF]
    return [(role.value, str(role.label)) for role in given]


def _user(request: HttpRequest) -> User:
    return request.user  # type: ignore[return-value]


@login_required
def team(request: HttpRequest) -> HttpResponse:
    """Owners and admins add members (with a temporary password shown once), change roles,
    deactivate and reactivate them, and give one who forgot theirs a new temporary password."""
    if not _user(request).can_manage:
        raise PermissionDenied(_("Only owners and admins manage the team."))
    roles = _roles_for(_user(request))
    form = MemberForm(request.POST or None, roles=roles)
    if request.method == "POST" and form.is_valid():
        try:
            member, password = member_add(by=_user(request), **form.cleaned_data)
        except ValidationError as exc:
            form.add_error("email", exc)
        else:
            request.session[_NEW_PASSWORD] = [member.email, password]
            messages.success(request, _("Member added. Give them their temporary password."))
            return redirect("dashboard:team")
    context = {
        "form": form,
        "members": user_list(),
        "new_password": request.session.pop(_NEW_PASSWORD, None),
        "roles": roles,
        "manageable": [value for value, _label in roles],
    }
    return render(request, "dashboard/team.html", context)


@login_required
@require_POST
def team_member(request: HttpRequest, user_id: int) -> HttpResponse:
    """One change to a member: ``role``, ``active`` ("1"/"0") or ``password`` (a new temporary
    one); refusals come back as messages on the team page."""
    if not _user(request).can_manage:
        raise PermissionDenied(_("Only owners and admins manage the team."))
    try:
        if "password" in request.POST:
            member, password = member_password_reset(by=_user(request), user_id=user_id)
            request.session[_NEW_PASSWORD] = [member.email, password]
        else:
            active = request.POST.get("active")
            if active not in (None, "0", "1"):
                raise ValidationError(_("Unknown change."))
            member_update(
                by=_user(request),
                user_id=user_id,
                role=request.POST.get("role") or None,
                is_active=None if active is None else active == "1",
            )
            messages.success(request, _("Saved."))
    except User.DoesNotExist as exc:
        raise Http404 from exc
    except (ValidationError, PermissionDenied) as exc:
        messages.error(request, " ".join(getattr(exc, "messages", [str(exc)])))
    return redirect("dashboard:team")


class PasswordChangeView(auth_views.PasswordChangeView):
    template_name = "dashboard/password_change.html"
    success_url = "/"

    def form_valid(self, form: Any) -> HttpResponse:
        messages.success(self.request, _("Your password was changed."))
        return super().form_valid(form)
