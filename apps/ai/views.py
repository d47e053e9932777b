"""Usage dashboard (/usage/): totals per day and model, the monthly budget, tenants' own keys.

Owners and admins only. Keys are write-only here: the page shows whether a key is set and
when, never the key.
"""

from __future__ import annotations

import datetime as dt

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils import timezone
from django.utils.translation import gettext as _
from django.views.decorators.http import require_POST

from .forms import BudgetForm, ProviderKeyForm
from .models import ProviderKey
from .routing import credentials_for
from .selectors import (
    budget_limit_usd,
    month_spend_usd,
    provider_keys_list,
    usage_totals_by_day_and_model,
)
from .services import budget_set, provider_key_delete, provider_key_set

DAY_CHOICES = (7, 30, 90)


def _require_manager(request: HttpRequest) -> None:
    if not getattr(request.user, "can_manage", False):
        raise PermissionDenied(_("Only owners and admins see usage and manage model keys."))


@login_required
def usage(request: HttpRequest) -> HttpResponse:
    _require_manager(request)
    try:
        days = int(request.GET.get("days", "30"))
    except ValueError:
        days = 30
    days = days if days in DAY_CHOICES else 30
    since = timezone.localdate() - dt.timedelta(days=days - 1)
    totals = usage_totals_by_day_and_model(since=since)
    limit = budget_limit_usd()
    keys = {info.provider: info for info in provider_keys_list()}
    context = {
        "totals": totals,
        "days": days,
        "day_choices": DAY_CHOICES,
        "month_spend": month_spend_usd(),
        "limit": limit,
        "budget_form": BudgetForm(initial={"monthly_limit_usd": limit}),
        "key_form": ProviderKeyForm(),
        # (provider, label, the tenant's key or None, whether the platform's key would be used)
        "providers": [
            (value, label, keys.get(value), credentials_for(value).source == "env")
            for value, label in ProviderKey.Provider.choices
        ],
    }
    if request.htmx:  # type: ignore[attr-defined]
        return render(request, "ai/_usage_rows.html", context)
    return render(request, "ai/usage.html", context)


@login_required
@require_POST
def key_set(request: HttpRequest) -> HttpResponse:
    _require_manager(request)
    form = ProviderKeyForm(request.POST)
    if form.is_valid():
        provider_key_set(
            provider=form.cleaned_data["provider"],
            api_key=form.cleaned_data["api_key"],
            base_url=form.cleaned_data["base_url"] or "",
        )
        messages.success(request, _("Key saved. It is stored encrypted and will not be shown."))
    else:
        messages.error(request, _("The key was not saved: check the form."))
    return redirect("ai:usage")


@login_required
@require_POST
def key_delete(request: HttpRequest, provider: str) -> HttpResponse:
    _require_manager(request)
    if provider_key_delete(provider=provider):
        messages.info(request, _("Key removed. The platform's key is used again."))
    return redirect("ai:usage")


@login_required
@require_POST
def budget_update(request: HttpRequest) -> HttpResponse:
    _require_manager(request)
    form = BudgetForm(request.POST)
    if form.is_valid():
        budget_set(monthly_limit_usd=form.cleaned_data["monthly_limit_usd"])
        messages.success(request, _("Budget saved."))
    else:
        messages.error(request, _("The budget was not saved: check the amount."))
    return redirect("ai:usage")
