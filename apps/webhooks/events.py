"""The events a business's systems can subscribe to, and the JSON each one carries.

One vocabulary for the dashboard, the API and docs/webhooks.md. Payloads are built here from
the domain objects so that every event of a kind has the same shape whoever triggered it.
"""

from __future__ import annotations

from typing import Any

from django.db import models
from django.utils.translation import gettext_lazy as _


class Event(models.TextChoices):
    LEAD_UPDATED = "lead.updated", _("A lead's details or stage changed")
    CONVERSATION_HANDED_OFF = "conversation.handed_off", _("A conversation needs a person")
    CONVERSATION_CLOSED = "conversation.closed", _("A conversation was closed")


#: Sent only by "Send a test event"; nobody subscribes to it.
TEST_EVENT = "webhook.test"


def contact_payload(contact: Any) -> dict[str, Any]:
    from apps.conversations.services import LEAD_FIELDS

    return {
        "id": contact.pk,
        "phone": contact.phone,
        "stage": contact.stage,
        "language": contact.language,
        **{name: getattr(contact, name, "") for name in LEAD_FIELDS},
    }


def conversation_payload(conversation: Any) -> dict[str, Any]:
    assigned = conversation.assigned_to
    return {
        "id": conversation.pk,
        "mode": conversation.mode,
        "channel": conversation.channel,
        "handoff_reason": conversation.handoff_reason,
        "assigned_to": assigned.email if assigned is not None else None,
        "contact": contact_payload(conversation.contact),
    }
