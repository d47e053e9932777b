"""Bookkeeping of a conversation's thread shared by every writer: the preview and the counters."""

from __future__ import annotations

from apps.conversations.models import Conversation, Message


def _preview(text: str) -> str:
    return " ".join(text.split())[:200]


def _touch(conversation: Conversation, message: Message, *, unread: bool) -> None:
    conversation.last_message_at = message.created_at
    preview = message.body or f"[{message.get_kind_display()}]"
    conversation.last_message_preview = _preview(preview)
    fields = ["last_message_at", "last_message_preview"]
    if unread:
        conversation.unread_count += 1
        fields.append("unread_count")
    conversation.save(update_fields=fields)
