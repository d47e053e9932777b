"""Delivery of outbound messages: statuses that only move forward, and handing a message to its
channel after the commit."""

from __future__ import annotations

import uuid

from django.core.exceptions import ValidationError
from django.db import transaction

from apps.conversations.models import Conversation, Message

DELIVERY_TASK = "workers.delivery.deliver_message"

# Order of delivery states: a late or repeated acknowledgement never moves a message back.
_STATUS_RANK: dict[str, int] = {
    Message.Status.QUEUED: 0,
    Message.Status.SENT: 1,
    Message.Status.DELIVERED: 2,
    Message.Status.READ: 3,
}
# The gateway's ack vocabulary (docs/streams.md) mapped onto ours.
_STATUS_ALIASES: dict[str, str] = {
    "pending": Message.Status.QUEUED,
    "played": Message.Status.READ,
    "error": Message.Status.FAILED,
}


def _normalize_status(status: str) -> str:
    status = _STATUS_ALIASES.get(status, status)
    if status not in _STATUS_RANK and status != Message.Status.FAILED:
        raise ValidationError(f"Unknown delivery status {status!r}.")
    return status


def _advance(message: Message, status: str, error: str = "") -> bool:
    if message.status == Message.Status.FAILED:
        return False  # final
    if status == Message.Status.FAILED:
        message.status, message.error = status, error[:300]
        message.save(update_fields=["status", "error"])
        return True
    current = _STATUS_RANK.get(message.status, -1)
    if _STATUS_RANK[status] <= current:
        return False
    message.status = status
    message.save(update_fields=["status"])
    return True


@transaction.atomic
def message_status_update(*, external_id: str, status: str, error: str = "") -> bool:
    """Move an outbound message's delivery status forward (queued < sent < delivered < read;
    failed is final). Accepts the gateway's words too (pending, played, error). Returns whether
    anything changed; an unknown id or a stale/duplicate ack changes nothing."""
    status = _normalize_status(status)
    message = Message.objects.select_for_update().filter(external_id=external_id).first()
    if message is None:
        return False
    return _advance(message, status, error)


@transaction.atomic
def message_delivery_ack(
    *, command_event_id: str | uuid.UUID | None, external_id: str, status: str, error: str = ""
) -> bool:
    """The first ack of a send carries the command's event id: link the channel's message id to
    the outbound message, then move its status forward. Later acks match on ``external_id``."""
    status = _normalize_status(status)
    message = None
    if command_event_id:
        message = (
            Message.objects.select_for_update().filter(command_event_id=command_event_id).first()
        )
    if message is None:
        message = Message.objects.select_for_update().filter(external_id=external_id).first()
    if message is None:
        return False
    linked = False
    if external_id and message.external_id != external_id:
        message.external_id = external_id
        message.save(update_fields=["external_id"])
        linked = True
    return _advance(message, status, error) or linked


@transaction.atomic
def message_command_assign(*, message_id: int) -> uuid.UUID:
    """Give an outbound message the event id of the command that carries it (stable on retries,
    so a redelivered publish is recognised by the gateway's send dedupe)."""
    message = Message.objects.select_for_update().get(pk=message_id)
    if message.command_event_id is None:
        message.command_event_id = uuid.uuid4()
        message.save(update_fields=["command_event_id"])
    return message.command_event_id


@transaction.atomic
def message_mark_failed(*, message_id: int, error: str) -> bool:
    message = Message.objects.select_for_update().get(pk=message_id)
    return _advance(message, Message.Status.FAILED, error)


def message_is_sendable(*, message_id: int) -> bool:
    """Whether an outbound message may still go out, checked right before sending: a bot reply
    is not sent once the conversation left bot mode or the contact opted out; no message at all
    goes to an opted-out contact except what staff type themselves."""
    message = Message.objects.select_related("conversation__contact").filter(pk=message_id).first()
    if message is None or message.direction != Message.Direction.OUT:
        return False
    if message.status != Message.Status.QUEUED:
        return False
    conversation = message.conversation
    if message.sender == Message.Sender.BOT:
        if conversation.contact.opted_out:
            return False
        return conversation.mode == Conversation.Mode.BOT or message.is_handoff_notice
    return message.sender == Message.Sender.STAFF


def _deliver_on_commit(message_id: int) -> None:
    from eva.celery import app

    transaction.on_commit(lambda: app.send_task(DELIVERY_TASK, args=[message_id]))


def _cancel_pending_bot_replies(conversation: Conversation) -> None:
    """A handoff also stops bot replies already stored but not yet sent."""
    conversation.messages.filter(
        sender=Message.Sender.BOT, status=Message.Status.QUEUED, is_handoff_notice=False
    ).update(status=Message.Status.FAILED, error="cancelled: conversation handed to a human")


def bot_reply_deliver(*, message_id: int) -> None:
    """Hand a stored bot reply to the channel's outbound side (after the current commit)."""
    _deliver_on_commit(message_id)
