"""Handoff to a person, return to the bot, closing, and staff replies."""

from __future__ import annotations

from typing import IO

from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from apps.accounts.models import User
from apps.conversations.models import Conversation, Message
from apps.conversations.services._thread import _touch
from apps.conversations.services.attachments import attachment_store
from apps.conversations.services.delivery import _cancel_pending_bot_replies, _deliver_on_commit
from apps.conversations.services.replies import _first_status
from apps.webhooks.events import Event, conversation_payload
from apps.webhooks.services import webhook_emit


def announce(conversation: Conversation, event: Event) -> None:
    """Tell the business's systems (webhooks); simulator chats are the business's own tests."""
    if not conversation.contact.is_simulated:
        webhook_emit(event=event, data={"conversation": conversation_payload(conversation)})


def _system_note(conversation: Conversation, text: str) -> Message:
    return Message.objects.create(
        conversation=conversation,
        direction=Message.Direction.OUT,
        sender=Message.Sender.SYSTEM,
        kind=Message.Kind.SYSTEM,
        text=text,
        status=Message.Status.DELIVERED,
    )


@transaction.atomic
def conversation_handoff(
    *, conversation_id: int, reason: str, user: User | None = None
) -> Conversation:
    """Switch to ``human``: the bot stays silent (replies computed earlier are refused when they
    try to store, and stored-but-unsent ones are cancelled) until staff return it to the bot."""
    conversation = Conversation.objects.select_for_update().get(pk=conversation_id)
    if conversation.mode == Conversation.Mode.HUMAN and conversation.human_until is None:
        return conversation
    conversation.mode = Conversation.Mode.HUMAN
    conversation.human_until = None
    conversation.handoff_reason = reason[:200]
    conversation.handoff_at = timezone.now()
    fields = ["mode", "human_until", "handoff_reason", "handoff_at"]
    if user is not None:
        conversation.assigned_to = user
        fields.append("assigned_to")
    conversation.save(update_fields=fields)
    _cancel_pending_bot_replies(conversation)
    _system_note(conversation, f"Handed to a human: {reason}"[:500])
    announce(conversation, Event.CONVERSATION_HANDED_OFF)
    return conversation


@transaction.atomic
def conversation_assign(
    *, conversation_id: int, assignee_id: int | None, user: User | None = None
) -> Conversation:
    """Give the conversation to a member of the team (``None``: to nobody). The assignee must
    be an active member of this tenant; a note in the thread says who did it."""
    conversation = Conversation.objects.select_for_update().get(pk=conversation_id)
    assignee = None
    if assignee_id is not None:
        assignee = User.objects.filter(pk=assignee_id, is_active=True).first()
        if assignee is None:
            raise ValidationError(_("Choose an active member of your team."))
    if conversation.assigned_to_id == (assignee.pk if assignee else None):
        return conversation
    conversation.assigned_to = assignee
    conversation.save(update_fields=["assigned_to"])
    who = user.email if user is not None else "system"
    if assignee is None:
        _system_note(conversation, f"Unassigned by {who}")
    else:
        _system_note(conversation, f"Assigned to {assignee.email} by {who}")
    return conversation


@transaction.atomic
def conversation_return_to_bot(*, conversation_id: int, user: User | None = None) -> Conversation:
    conversation = Conversation.objects.select_for_update().get(pk=conversation_id)
    if conversation.mode == Conversation.Mode.BOT:
        return conversation
    conversation.mode = Conversation.Mode.BOT
    conversation.human_until = None
    conversation.low_relevance_turns = 0
    # Messages that arrived while a human was in charge are theirs; the bot answers new ones.
    last_in = (
        conversation.messages.filter(direction=Message.Direction.IN)
        .order_by("-id")
        .values_list("id", flat=True)
        .first()
    )
    conversation.answered_through_id = max(conversation.answered_through_id, last_in or 0)
    conversation.save(
        update_fields=["mode", "human_until", "low_relevance_turns", "answered_through_id"]
    )
    who = user.email if user is not None else "system"
    _system_note(conversation, f"Returned to the bot by {who}")
    return conversation


@transaction.atomic
def conversation_close(*, conversation_id: int, user: User | None = None) -> Conversation:
    conversation = Conversation.objects.select_for_update().get(pk=conversation_id)
    if conversation.mode != Conversation.Mode.CLOSED:
        conversation.mode = Conversation.Mode.CLOSED
        conversation.unread_count = 0
        conversation.save(update_fields=["mode", "unread_count"])
        _cancel_pending_bot_replies(conversation)
        who = user.email if user is not None else "system"
        _system_note(conversation, f"Closed by {who}")
        announce(conversation, Event.CONVERSATION_CLOSED)
    return conversation


def conversation_mark_read(*, conversation: Conversation) -> None:
    if conversation.unread_count:
        Conversation.objects.filter(pk=conversation.pk).update(unread_count=0)
        conversation.unread_count = 0


@transaction.atomic
def staff_message_send(
    *,
    conversation_id: int,
    author: User,
    text: str,
    attachment: IO[bytes] | None = None,
    attachment_name: str = "",
) -> Message:
    """A staff member's reply: stored, queued and handed to the channel for delivery. Replying
    takes the conversation over (mode ``human``) so the bot does not answer alongside staff.

    With an ``attachment`` (a picture, audio or a document; ``attachment_store`` checks it) the
    text is its caption and may be empty."""
    text = text.strip()
    if attachment is None and not text:
        raise ValidationError(_("Write a message first."))
    if attachment is not None and len(text) > 1024:
        raise ValidationError(_("Captions of files are limited to 1,024 characters."))
    if len(text) > 4096:
        raise ValidationError(_("WhatsApp messages are limited to 4,096 characters."))
    kind: str = Message.Kind.TEXT
    media = None
    if attachment is not None:
        # Stored before the conversation is locked; a file whose message is then refused stays
        # in the storage (content-addressed: sending it again reuses it).
        kind, media = attachment_store(attachment, name=attachment_name)
    conversation = Conversation.objects.select_for_update().get(pk=conversation_id)
    if conversation.mode == Conversation.Mode.CLOSED:
        raise ValidationError(_("This conversation is closed."))
    if conversation.mode == Conversation.Mode.BOT or conversation.human_until is not None:
        conversation.mode = Conversation.Mode.HUMAN
        conversation.human_until = None
        conversation.handoff_reason = "staff replied"
        conversation.handoff_at = timezone.now()
        conversation.assigned_to = conversation.assigned_to or author
        conversation.save(
            update_fields=["mode", "human_until", "handoff_reason", "handoff_at", "assigned_to"]
        )
        _cancel_pending_bot_replies(conversation)
        announce(conversation, Event.CONVERSATION_HANDED_OFF)
    message = Message.objects.create(
        conversation=conversation,
        direction=Message.Direction.OUT,
        sender=Message.Sender.STAFF,
        kind=kind,
        text=text,
        media=media,
        status=_first_status(conversation),
        author=author,
        sent_at=timezone.now(),
    )
    conversation.unread_count = 0
    conversation.save(update_fields=["unread_count"])
    _touch(conversation, message, unread=False)
    _deliver_on_commit(message.pk)
    return message
