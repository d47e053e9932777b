"""Outbound delivery: a stored reply (bot or staff) handed to its channel.

Sent by name (``workers.delivery.deliver_message``) by conversations after a reply is stored.
For WhatsApp conversations it publishes the command on the gateway's outbound stream; for the
simulator it does nothing (the reply is already visible where it was asked).
"""

from __future__ import annotations

from apps.channels.services import message_deliver
from eva.celery import app
from workers.base import TenantBoundTask


# Retries (Redis briefly down) and the final dead letter come from TenantBoundTask.
@app.task(name="workers.delivery.deliver_message", base=TenantBoundTask)
def deliver_message(message_id: int) -> str | None:
    """Publish the message; returns the command's event_id (None: nothing to send)."""
    return message_deliver(message_id=message_id)
