"""Bot replies, stored under the conversation's row lock."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django.db import transaction
from django.utils import timezone

from apps.conversations.models import Conversation, Message
from apps.conversations.services._thread import _preview


@dataclass(frozen=True)
class BotReply:
    text: str
    provider: str
    model: str
    latency_ms: int
    tokens_in: int
    tokens_out: int
    usage_id: int | None
    citations: list[dict[str, Any]]


def _first_status(conversation: Conversation) -> str:
    """What an outbound message starts as: queued for its channel, or, in the simulator (which
    shows it in place, nothing to send), delivered at once, so that a later handoff does not
    mark as cancelled a reply the user already read."""
    if conversation.channel == Conversation.Channel.SIMULATOR:
        return Message.Status.DELIVERED
    return Message.Status.QUEUED


@transaction.atomic
def bot_reply_record(
    *,
    conversation_id: int,
    answered_through_id: int,
    replied_to_ids: list[int],
    reply: BotReply,
    handoff_notice: bool = False,
) -> Message | None:
    """Store the agent's reply to the inbound messages up to ``answered_through_id``, or refuse.

    Refused (returns None) when, at this moment and under the conversation's row lock, the
    conversation is no longer in bot mode, the contact opted out, or a reply already answered
    those messages (a duplicate task). The caller then sends nothing.
    """
    conversation = (
        Conversation.objects.select_for_update().select_related("contact").get(pk=conversation_id)
    )
    if conversation.mode != Conversation.Mode.BOT or conversation.contact.opted_out:
        return None
    if conversation.answered_through_id >= answered_through_id:
        return None
    message = Message.objects.create(
        conversation=conversation,
        direction=Message.Direction.OUT,
        sender=Message.Sender.BOT,
        kind=Message.Kind.TEXT,
        text=reply.text,
        status=_first_status(conversation),
        provider=reply.provider[:40],
        model=reply.model[:100],
        latency_ms=max(0, reply.latency_ms),
        tokens_in=max(0, reply.tokens_in),
        tokens_out=max(0, reply.tokens_out),
        usage_id=reply.usage_id,
        citations=reply.citations,
        replied_to_ids=replied_to_ids,
        is_handoff_notice=handoff_notice,
        sent_at=timezone.now(),
    )
    conversation.answered_through_id = answered_through_id
    conversation.last_message_at = message.created_at
    conversation.last_message_preview = _preview(message.text)
    conversation.save(
        update_fields=["answered_through_id", "last_message_at", "last_message_preview"]
    )
    return message


@transaction.atomic
def conversation_relevance_note(*, conversation_id: int, low: bool) -> int:
    """Count consecutive low-relevance turns (a handoff rule); a good turn resets the count."""
    conversation = Conversation.objects.select_for_update().get(pk=conversation_id)
    conversation.low_relevance_turns = conversation.low_relevance_turns + 1 if low else 0
    conversation.save(update_fields=["low_relevance_turns"])
    return conversation.low_relevance_turns


@transaction.atomic
def conversation_agent_assign(*, conversation_id: int, agent_id: int) -> None:
    Conversation.objects.filter(pk=conversation_id, agent_id__isnull=True).update(agent_id=agent_id)
