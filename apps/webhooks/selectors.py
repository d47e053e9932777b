"""Reads of webhook endpoints and their deliveries (tenant schema: nothing crosses tenants)."""

from __future__ import annotations

from django.db.models import OuterRef, QuerySet, Subquery

from apps.webhooks.models import WebhookDelivery, WebhookEndpoint


def webhook_endpoint_list() -> QuerySet[WebhookEndpoint]:
    """Every endpoint, with the status and time of its latest delivery (``last_status``,
    ``last_at``; None before the first)."""
    latest = WebhookDelivery.objects.filter(endpoint=OuterRef("pk")).order_by("-created_at", "-id")
    return WebhookEndpoint.objects.annotate(
        last_status=Subquery(latest.values("status")[:1]),
        last_at=Subquery(latest.values("created_at")[:1]),
    ).order_by("created_at", "id")


def webhook_endpoint_get(*, endpoint_id: int) -> WebhookEndpoint | None:
    return WebhookEndpoint.objects.filter(pk=endpoint_id).first()


def webhook_delivery_list(*, endpoint_id: int) -> QuerySet[WebhookDelivery]:
    """The endpoint's deliveries, newest first."""
    return WebhookDelivery.objects.filter(endpoint_id=endpoint_id).order_by("-created_at", "-id")


def webhook_delivery_get(*, endpoint_id: int, delivery_id: int) -> WebhookDelivery | None:
    return WebhookDelivery.objects.filter(endpoint_id=endpoint_id, pk=delivery_id).first()
