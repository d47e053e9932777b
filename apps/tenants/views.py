"""The public host's pages: the landing page and self-service sign-up."""

from __future__ import annotations

import logging

from django.conf import settings
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import render
from django.utils.translation import gettext as _

from apps.tenants.forms import SignupForm
from apps.tenants.models import Tenant
from apps.tenants.services import TenantError
from apps.tenants.signup import signup_allowed, workspace_login_url

logger = logging.getLogger(__name__)


def landing(request: HttpRequest) -> HttpResponse:
    """The public site; ``?workspace=<slug>`` takes a returning user to their workspace's login."""
    wanted = request.GET.get("workspace", "").strip().lower()
    not_found = False
    if wanted:
        tenant = Tenant.objects.filter(slug=wanted).exclude(schema_name="public").first()
        if tenant is not None:
            return HttpResponseRedirect(workspace_login_url(request, tenant.slug))
        not_found = True
    context = {
        "base_domain": settings.EVA_BASE_DOMAIN,
        "signup_open": settings.EVA_SIGNUP_OPEN,
        "wanted": wanted,
        "not_found": not_found,
    }
    return render(request, "tenants/landing.html", context)


def signup(request: HttpRequest) -> HttpResponse:
    """A business creates its workspace (tenant, schema, address) and its owner account, then
    logs in at its own address. Closed when EVA_SIGNUP_OPEN is off."""
    if not settings.EVA_SIGNUP_OPEN:
        return render(request, "tenants/signup_closed.html", status=404)
    form = SignupForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        if not signup_allowed(request):
            form.add_error(None, _("Too many workspaces were created from here. Try again later."))
        else:
            from apps.accounts.services import tenant_onboard

            data = form.cleaned_data
            try:
                onboarded = tenant_onboard(
                    slug=data["slug"],
                    name=data["name"],
                    owner_email=data["email"],
                    owner_password=data["password"],
                )
            except TenantError:
                # Taken between the check and the creation (nothing was created).
                logger.warning("sign-up refused", exc_info=True)
                form.add_error("slug", _("This address is taken; choose another one."))
            else:
                logger.info("workspace created by sign-up", extra={"tenant": onboarded.tenant.slug})
                return HttpResponseRedirect(
                    workspace_login_url(
                        request,
                        onboarded.tenant.slug,
                        {"welcome": 1, "email": onboarded.owner.email},
                    )
                )
    context = {"form": form, "base_domain": settings.EVA_BASE_DOMAIN}
    return render(request, "tenants/signup.html", context)
