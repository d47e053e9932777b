"""Webhook endpoints (owners and admins manage them) and the deliveries of events to them.

``webhook_emit`` is what other apps call when something a business's systems care about
happened; it stores one delivery per subscribed endpoint in the caller's transaction and hands
them to the ``webhooks`` queue once that commits, so an event is never sent for a change that
was rolled back, nor lost when the receiver is down.
"""

from __future__ import annotations

import json
import logging
import secrets
import uuid
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import URLValidator
from django.db import connection, transaction
from django.db.models import Q
from django.utils import timezone
from django.utils.translation import gettext as _

from apps.accounts.models import User
from apps.ai import crypto
from apps.webhooks.events import TEST_EVENT, Event
from apps.webhooks.models import WebhookDelivery, WebhookEndpoint
from apps.webhooks.sending import TargetRefused, post, target_check
from eva.db import current_schema

logger = logging.getLogger(__name__)

DELIVERY_TASK = "workers.webhooks.deliver_webhook"
SECRET_PREFIX = "whsec_"  # noqa: S105 - the visible prefix of generated secrets, not a secret
MAX_ENDPOINTS = 10


def _url_clean(url: str) -> str:
    url = url.strip()
    try:
        URLValidator(schemes=["http", "https"])(url)
    except ValidationError as exc:
        raise ValidationError(
            {"url": _("Enter a full address, such as https://crm.example.com/eva.")}
        ) from exc
    try:
        target_check(url)
    except TargetRefused as exc:
        raise ValidationError({"url": str(exc)}) from exc
    return url


def _events_clean(events: list[str]) -> list[str]:
    chosen = sorted(set(events))
    unknown = [event for event in chosen if event not in Event.values]
    if unknown:
        raise ValidationError(
            {"events": _("Unknown events: %(events)s.") % {"events": ", ".join(unknown)}}
        )
    if not chosen:
        raise ValidationError({"events": _("Choose at least one event.")})
    return chosen


def _secret_new() -> tuple[str, str]:
    """A new secret and its stored (encrypted) form."""
    secret = SECRET_PREFIX + secrets.token_urlsafe(32)
    return secret, crypto.encrypt(secret)


@transaction.atomic
def webhook_endpoint_create(
    *, url: str, events: list[str], description: str = "", created_by: User | None
) -> tuple[WebhookEndpoint, str]:
    """A new active endpoint and its signing secret (shown to the caller once; EVA keeps it
    encrypted). Raises ValidationError (by field) for a refused address or unknown events."""
    url, events = _url_clean(url), _events_clean(events)
    if WebhookEndpoint.objects.count() >= MAX_ENDPOINTS:
        raise ValidationError(
            _("A workspace has at most %(count)d webhook endpoints.") % {"count": MAX_ENDPOINTS}
        )
    secret, stored = _secret_new()
    endpoint = WebhookEndpoint.objects.create(
        url=url,
        events=events,
        description=description.strip()[:100],
        secret_encrypted=stored,
        created_by=created_by,
    )
    return endpoint, secret


@transaction.atomic
def webhook_endpoint_update(
    *,
    endpoint_id: int,
    url: str | None = None,
    events: list[str] | None = None,
    description: str | None = None,
    is_active: bool | None = None,
) -> WebhookEndpoint:
    """Change what is given (None: unchanged). Raises WebhookEndpoint.DoesNotExist."""
    endpoint = WebhookEndpoint.objects.select_for_update().get(pk=endpoint_id)
    fields = []
    if url is not None:
        endpoint.url = _url_clean(url)
        fields.append("url")
    if events is not None:
        endpoint.events = _events_clean(events)
        fields.append("events")
    if description is not None:
        endpoint.description = description.strip()[:100]
        fields.append("description")
    if is_active is not None:
        endpoint.is_active = is_active
        fields.append("is_active")
    if fields:
        endpoint.save(update_fields=[*fields, "updated_at"])
    return endpoint


def webhook_endpoint_delete(*, endpoint_id: int) -> None:
    """Delete the endpoint and its deliveries (those not yet sent are not sent)."""
    deleted, _by_model = WebhookEndpoint.objects.filter(pk=endpoint_id).delete()
    if not deleted:
        raise WebhookEndpoint.DoesNotExist


@transaction.atomic
def webhook_secret_roll(*, endpoint_id: int) -> tuple[WebhookEndpoint, str]:
    """A new signing secret; the old one stops being used at once (deliveries still pending
    are signed with the new one when they are sent)."""
    endpoint = WebhookEndpoint.objects.select_for_update().get(pk=endpoint_id)
    secret, endpoint.secret_encrypted = _secret_new()
    endpoint.save(update_fields=["secret_encrypted", "updated_at"])
    return endpoint, secret


def _workspace() -> str:
    """The tenant's slug (its address), as receivers serving several workspaces tell them apart."""
    return str(getattr(getattr(connection, "tenant", None), "slug", "") or current_schema())


def _enqueue_on_commit(delivery_ids: list[int]) -> None:
    from eva.celery import app

    def send() -> None:
        for delivery_id in delivery_ids:
            app.send_task(DELIVERY_TASK, args=[delivery_id])

    # robust: a queue that does not answer must not turn the change that was just committed
    # (a handoff, a lead) into an error; the deliveries stay pending and can be sent again.
    transaction.on_commit(send, robust=True)


def _deliveries_create(
    endpoints: list[WebhookEndpoint], event: str, data: dict[str, Any]
) -> list[WebhookDelivery]:
    event_id = uuid.uuid4()
    payload = {
        "id": str(event_id),
        "type": event,
        "created_at": timezone.now().isoformat(),
        "workspace": _workspace(),
        "data": data,
    }
    deliveries = WebhookDelivery.objects.bulk_create(
        [
            WebhookDelivery(endpoint=endpoint, event_id=event_id, event=event, payload=payload)
            for endpoint in endpoints
        ]
    )
    _enqueue_on_commit([delivery.pk for delivery in deliveries])
    return deliveries


def webhook_emit(*, event: Event | str, data: dict[str, Any]) -> int:
    """Record ``event`` for every active endpoint subscribed to it; they are sent once the
    caller's transaction commits. Returns how many deliveries were made (0: nobody listens)."""
    endpoints = list(WebhookEndpoint.objects.filter(is_active=True, events__contains=[str(event)]))
    if not endpoints:
        return 0
    return len(_deliveries_create(endpoints, str(event), data))


@transaction.atomic
def webhook_test_send(*, endpoint_id: int) -> WebhookDelivery:
    """A ``webhook.test`` event for this endpoint only (active or not), to check a receiver."""
    endpoint = WebhookEndpoint.objects.get(pk=endpoint_id)
    data = {"message": "This is a test event from EVA."}
    return _deliveries_create([endpoint], TEST_EVENT, data)[0]


@transaction.atomic
def webhook_redeliver(*, delivery_id: int) -> WebhookDelivery:
    """Send a delivery that failed (or is still waiting) again, with the same ids, so a
    receiver that stored it the first time recognises it."""
    delivery = WebhookDelivery.objects.select_for_update().get(pk=delivery_id)
    if delivery.status == WebhookDelivery.Status.DELIVERED:
        raise ValidationError(_("This event was delivered already."))
    delivery.status = WebhookDelivery.Status.PENDING
    delivery.save(update_fields=["status"])
    _enqueue_on_commit([delivery.pk])
    return delivery


def webhook_deliveries_forget_contact(*, contact_id: int) -> int:
    """Delete the deliveries that carry a customer's details (their erasure): sent or not, they
    hold the name, phone and email. Returns how many were deleted."""
    about = Q(payload__data__contact__id=contact_id) | Q(
        payload__data__conversation__contact__id=contact_id
    )
    deleted, _by_model = WebhookDelivery.objects.filter(about).delete()
    return deleted


@dataclass(frozen=True)
class Swept:
    deleted: int  # delivered or failed, older than the retention
    requeued: int  # pending with no attempt for longer than any retry waits


def webhook_deliveries_sweep() -> Swept:
    """Housekeeping of this tenant's deliveries (beat runs it for every tenant):

    * delivered and failed deliveries older than ``EVA_WEBHOOK_KEEP_DAYS`` are deleted (the
      history the dashboard shows is for the latest; payloads hold customers' details);
    * a pending delivery with no attempt for longer than the longest backoff plus a margin has
      no task left to send it (the queue did not answer when it was made, or the task was lost
      with its worker): it is handed to the queue again. At worst a receiver gets an event twice,
      with the same event id.
    """
    now = timezone.now()
    old = now - timedelta(days=settings.EVA_WEBHOOK_KEEP_DAYS)
    deleted, _by_model = WebhookDelivery.objects.filter(
        created_at__lt=old,
        status__in=[WebhookDelivery.Status.DELIVERED, WebhookDelivery.Status.FAILED],
    ).delete()
    quiet = now - timedelta(
        seconds=2 * (settings.EVA_WEBHOOK_RETRY_BACKOFF_MAX + settings.EVA_WEBHOOK_TIMEOUT) + 300
    )
    stale = list(
        WebhookDelivery.objects.filter(status=WebhookDelivery.Status.PENDING)
        .filter(
            Q(last_attempt_at__lt=quiet) | Q(last_attempt_at__isnull=True, created_at__lt=quiet)
        )
        .values_list("pk", flat=True)[:1000]
    )
    if stale:
        with transaction.atomic():
            _enqueue_on_commit(stale)
    return Swept(deleted=deleted, requeued=len(stale))


@dataclass(frozen=True)
class Attempt:
    delivery: WebhookDelivery
    retry: bool  # not delivered yet; worth another attempt later


def webhook_delivery_attempt(*, delivery_id: int, last: bool) -> Attempt:
    """Send the delivery once and record the answer. ``last``: no attempt will follow, so a
    failure that could be retried is recorded as failed. A delivery delivered already (a task
    delivered twice) is not sent again; one whose endpoint was deleted no longer exists
    (WebhookDelivery.DoesNotExist)."""
    delivery = WebhookDelivery.objects.select_related("endpoint").get(pk=delivery_id)
    if delivery.status == WebhookDelivery.Status.DELIVERED:
        return Attempt(delivery=delivery, retry=False)
    endpoint = delivery.endpoint
    try:
        secret = crypto.decrypt(endpoint.secret_encrypted)
    except crypto.KeyUnreadable:
        answer_error, status, retry = (
            _("The signing secret cannot be read; roll a new one."),
            None,
            False,
        )
    else:
        answer = post(
            url=endpoint.url,
            secret=secret,
            event=delivery.event,
            event_id=str(delivery.event_id),
            body=json.dumps(delivery.payload, ensure_ascii=False).encode(),
        )
        answer_error, status, retry = answer.error, answer.status, answer.retry
    now = timezone.now()
    delivery.attempts += 1
    delivery.last_attempt_at = now
    delivery.response_status = status
    delivery.error = answer_error
    if not answer_error:
        delivery.status = WebhookDelivery.Status.DELIVERED
        delivery.delivered_at = now
    elif not retry or last:
        delivery.status = WebhookDelivery.Status.FAILED
    delivery.save(
        update_fields=[
            "attempts",
            "last_attempt_at",
            "response_status",
            "error",
            "status",
            "delivered_at",
        ]
    )
    if answer_error:
        logger.info(
            "webhook delivery failed",
            extra={"delivery": delivery.pk, "event": delivery.event, "error": answer_error},
        )
    return Attempt(delivery=delivery, retry=bool(answer_error) and retry and not last)
