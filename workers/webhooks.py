"""Webhook deliveries: one signed POST per attempt, retried with backoff on the ``webhooks``
queue (a slow receiver must not hold up replies on the ``agent`` queue).

A receiver that stays down is the tenant's concern, not the operator's: after the last attempt
the delivery is marked failed in the dashboard (where it can be sent again), not dead-lettered.
A task that fails for another reason (the database gone) follows the usual retry/dead-letter
path of TenantBoundTask.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django_tenants.utils import tenant_context

from apps.tenants.selectors import tenant_list
from apps.webhooks.models import WebhookDelivery
from apps.webhooks.services import webhook_deliveries_sweep, webhook_delivery_attempt
from eva.celery import app
from workers.base import PlatformTask, TenantBoundTask, backoff_delay


@app.task(name="workers.webhooks.deliver_webhook", base=TenantBoundTask, bind=True)
def deliver_webhook(self: Any, delivery_id: int) -> str:
    """Returns the delivery's status after this attempt ("gone": its endpoint was deleted)."""
    retries = int(self.request.retries or 0)
    attempts = int(settings.EVA_WEBHOOK_MAX_ATTEMPTS)
    try:
        attempt = webhook_delivery_attempt(delivery_id=delivery_id, last=retries + 1 >= attempts)
    except WebhookDelivery.DoesNotExist:
        return "gone"
    if attempt.retry:
        countdown = backoff_delay(
            retries,
            base=float(settings.EVA_WEBHOOK_RETRY_BACKOFF),
            cap=float(settings.EVA_WEBHOOK_RETRY_BACKOFF_MAX),
        )
        raise self.retry(countdown=countdown, max_retries=attempts - 1)
    return str(attempt.delivery.status)


@app.task(
    name="workers.webhooks.sweep_deliveries",
    base=PlatformTask,
    dead_letters=False,
    max_retries=0,
    # A sweep stuck longer than an interval is pointless: the next tick starts a fresh one.
    expires=600,
)
def sweep_deliveries() -> dict[str, int]:
    """Every tenant's webhook housekeeping (``webhook_deliveries_sweep``); a deactivated
    tenant's deliveries age out too."""
    deleted = requeued = 0
    for tenant in tenant_list():
        with tenant_context(tenant):
            swept = webhook_deliveries_sweep()
        deleted += swept.deleted
        requeued += swept.requeued
    return {"deleted": deleted, "requeued": requeued}
