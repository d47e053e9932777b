from __future__ import annotations

from django.contrib import messages
from django.contrib.auth import views as auth_views
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils.translation import gettext as _
from django.views.decorators.http import require_POST

from apps.accounts.selectors import api_token_get_for_user, api_token_list
from apps.accounts.services import api_token_create, api_token_revoke
from apps.dashboard.forms import ApiTokenForm, LoginForm

_NEW_KEY = "dashboard:new_api_key"


class LoginView(auth_views.LoginView):
    template_name = "dashboard/login.html"
    authentication_form = LoginForm
    redirect_authenticated_user = True


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
