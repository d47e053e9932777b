"""Dashboard: Settings → API → Webhooks (owners and admins)."""

from __future__ import annotations

from typing import cast

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils.translation import gettext as _
from django.views.decorators.http import require_POST

from apps.accounts.models import User
from apps.webhooks.events import Event
from apps.webhooks.forms import WebhookEndpointForm
from apps.webhooks.models import WebhookDelivery, WebhookEndpoint
from apps.webhooks.selectors import (
    webhook_delivery_get,
    webhook_delivery_list,
    webhook_endpoint_get,
    webhook_endpoint_list,
)
from apps.webhooks.services import (
    webhook_endpoint_create,
    webhook_endpoint_delete,
    webhook_endpoint_update,
    webhook_redeliver,
    webhook_secret_roll,
    webhook_test_send,
)

_NEW_SECRET = "webhooks:new_secret"  # noqa: S105 - a session key, not a secret


def _manager(request: HttpRequest) -> User:
    user = cast(User, request.user)  # login_required: a member, never anonymous
    if not user.can_manage:
        raise PermissionDenied(_("Only owners and admins manage webhooks."))
    return user


def _endpoint(endpoint_id: int) -> WebhookEndpoint:
    endpoint = webhook_endpoint_get(endpoint_id=endpoint_id)
    if endpoint is None:
        raise Http404(_("No such webhook endpoint."))
    return endpoint


def _show_secret_once(request: HttpRequest, endpoint: WebhookEndpoint, secret: str) -> None:
    # Post/redirect/get: the secret rides in the session until the endpoint's page pops it.
    request.session[_NEW_SECRET] = [endpoint.pk, secret]


@login_required
def endpoint_list_view(request: HttpRequest) -> HttpResponse:
    user = _manager(request)
    form = WebhookEndpointForm(request.POST or None, initial={"is_active": True})
    if request.method == "POST" and form.is_valid():
        try:
            endpoint, secret = webhook_endpoint_create(
                url=form.cleaned_data["url"],
                events=form.cleaned_data["events"],
                description=form.cleaned_data["description"],
                created_by=user,
            )
        except ValidationError as exc:
            form.add_error(None, exc)
        else:
            _show_secret_once(request, endpoint, secret)
            messages.success(request, _("Endpoint added. Copy its signing secret now."))
            return redirect("webhooks:detail", endpoint_id=endpoint.pk)
    context = {"form": form, "endpoints": webhook_endpoint_list(), "events": Event}
    return render(request, "webhooks/list.html", context)


@login_required
def endpoint_detail_view(request: HttpRequest, endpoint_id: int) -> HttpResponse:
    _manager(request)
    endpoint = _endpoint(endpoint_id)
    initial = {
        "url": endpoint.url,
        "description": endpoint.description,
        "events": endpoint.events,
        "is_active": endpoint.is_active,
    }
    form = WebhookEndpointForm(request.POST or None, initial=initial)
    if request.method == "POST" and form.is_valid():
        try:
            webhook_endpoint_update(endpoint_id=endpoint.pk, **form.cleaned_data)
        except ValidationError as exc:
            form.add_error(None, exc)
        else:
            messages.success(request, _("Endpoint saved."))
            return redirect("webhooks:detail", endpoint_id=endpoint.pk)
    new_secret = request.session.pop(_NEW_SECRET, None)
    context = {
        "endpoint": endpoint,
        "form": form,
        "new_secret": new_secret[1] if new_secret and new_secret[0] == endpoint.pk else None,
        **_deliveries_context(endpoint),
    }
    return render(request, "webhooks/detail.html", context)


def _deliveries_context(endpoint: WebhookEndpoint) -> dict[str, object]:
    deliveries = list(webhook_delivery_list(endpoint_id=endpoint.pk)[:50])
    pending = any(d.status == WebhookDelivery.Status.PENDING for d in deliveries)
    return {"endpoint": endpoint, "deliveries": deliveries, "pending": pending}


@login_required
def endpoint_deliveries_view(request: HttpRequest, endpoint_id: int) -> HttpResponse:
    """The deliveries table alone (HTMX refreshes it while deliveries are pending)."""
    _manager(request)
    context = _deliveries_context(_endpoint(endpoint_id))
    return render(request, "webhooks/_deliveries.html", context)


@login_required
@require_POST
def endpoint_test_view(request: HttpRequest, endpoint_id: int) -> HttpResponse:
    _manager(request)
    webhook_test_send(endpoint_id=_endpoint(endpoint_id).pk)
    messages.info(request, _("Test event queued; its delivery appears below."))
    return redirect("webhooks:detail", endpoint_id=endpoint_id)


@login_required
@require_POST
def endpoint_roll_view(request: HttpRequest, endpoint_id: int) -> HttpResponse:
    _manager(request)
    endpoint, secret = webhook_secret_roll(endpoint_id=_endpoint(endpoint_id).pk)
    _show_secret_once(request, endpoint, secret)
    messages.success(request, _("New signing secret made; the old one no longer signs events."))
    return redirect("webhooks:detail", endpoint_id=endpoint.pk)


@login_required
@require_POST
def endpoint_delete_view(request: HttpRequest, endpoint_id: int) -> HttpResponse:
    _manager(request)
    webhook_endpoint_delete(endpoint_id=_endpoint(endpoint_id).pk)
    messages.info(request, _("Endpoint deleted."))
    return redirect("webhooks:list")


@login_required
@require_POST
def delivery_redeliver_view(
    request: HttpRequest, endpoint_id: int, delivery_id: int
) -> HttpResponse:
    _manager(request)
    delivery = webhook_delivery_get(endpoint_id=_endpoint(endpoint_id).pk, delivery_id=delivery_id)
    if delivery is None:
        raise Http404(_("No such delivery."))
    try:
        webhook_redeliver(delivery_id=delivery.pk)
    except ValidationError as exc:
        messages.error(request, " ".join(exc.messages))
    else:
        messages.info(request, _("Sending it again."))
    return redirect("webhooks:detail", endpoint_id=endpoint_id)
