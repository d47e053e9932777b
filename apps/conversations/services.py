"""Writes on contacts, conversations and messages. Surfaces (the WhatsApp consumer, the simulator,
the transcription worker, the dashboard, the API) and the agent engine all come through here.

Concurrency: every write that depends on a conversation's state (storing a bot reply, handing
off, a staff reply) locks the conversation row first (``SELECT … FOR UPDATE``), so a bot reply
computed before a handoff is refused once the handoff committed.
"""

from __future__ import annotations

import contextlib
import json
import re
import unicodedata
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import lru_cache
from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.serializers.json import DjangoJSONEncoder
from django.db import IntegrityError, connection, transaction
from django.db.models import Q
from django.utils import timezone

from apps.accounts.models import User
from apps.conversations.models import Contact, Conversation, Message

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
_INBOUND_KINDS = {Message.Kind.TEXT, Message.Kind.AUDIO, Message.Kind.IMAGE, Message.Kind.DOCUMENT}
_CHANNELS = frozenset(Conversation.Channel.values)
LEAD_FIELDS = ("name", "email", "company", "interest", "budget", "notes")


@dataclass(frozen=True)
class InboundMessage:
    """One customer message as a surface received it (see ``inbound_messages_record``)."""

    channel: str
    channel_ref: str
    contact_wa_id: str
    contact_phone: str | None
    contact_name: str | None
    external_id: str
    kind: str
    text: str
    media: dict[str, Any] | None
    sent_at: datetime
    agent_id: int | None = None


@dataclass(frozen=True)
class InboundRecord:
    message: Message
    created: bool

    @property
    def conversation(self) -> Conversation:
        """The message's conversation (loaded on first use, in the current tenant's schema)."""
        return self.message.conversation


# --- opt-out ----------------------------------------------------------------------------------


def _normalize(text: str) -> str:
    text = unicodedata.normalize("NFKD", text.casefold())
    text = "".join(c for c in text if not unicodedata.combining(c))
    return re.sub(r"[\W_]+", " ", text).strip()


@lru_cache(maxsize=16)
def _consent_words(words: tuple[str, ...]) -> tuple[frozenset[str], tuple[str, ...]]:
    """Configured words, normalized once: whole-message words, and phrases (several words)."""
    normalized = [w for w in map(_normalize, words) if w]
    return frozenset(normalized), tuple(w for w in normalized if " " in w)


def _asks_to_stop(said: str) -> bool:
    words, phrases = _consent_words(tuple(settings.EVA_OPT_OUT_WORDS))
    return said in words or any(f" {phrase} " in f" {said} " for phrase in phrases)


def _asks_to_start(said: str) -> bool:
    return said in _consent_words(tuple(settings.EVA_OPT_IN_WORDS))[0]


def opt_out_requested(text: str) -> bool:
    """True when the customer asks to stop: a one-word message that is an opt-out word ("STOP",
    "BAJA"), or a message containing an opt-out phrase ("no me escriban más")."""
    said = _normalize(text)
    return bool(said) and _asks_to_stop(said)


def opt_in_requested(text: str) -> bool:
    said = _normalize(text)
    return bool(said) and _asks_to_start(said)


def _apply_consent(contact: Contact, text: str, now: datetime) -> None:
    if not contact.opted_out and opt_out_requested(text):
        contact.opted_out, contact.opted_out_at = True, now
        contact.save(update_fields=["opted_out", "opted_out_at", "updated_at"])
    elif contact.opted_out and opt_in_requested(text):
        contact.opted_out, contact.opted_out_at = False, None
        contact.save(update_fields=["opted_out", "opted_out_at", "updated_at"])


# --- inbound ----------------------------------------------------------------------------------


def _lock(key: str) -> None:
    """Serialize concurrent first messages of one contact (transaction-scoped advisory lock):
    without it two workers could each create the contact."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", [f"contact:{key}"])


def _contact_for(
    *, wa_id: str, phone: str | None, name: str | None, now: datetime, simulated: bool
) -> Contact:
    _lock(wa_id)
    contact = (
        Contact.objects.filter(Q(wa_id=wa_id) | Q(wa_ids__contains=[wa_id])).order_by("id").first()
    )
    if contact is None:
        return Contact.objects.create(
            wa_id=wa_id,
            phone=phone or "",
            name=(name or "").strip()[:150],
            first_contact_at=now,
            last_contact_at=now,
            is_simulated=simulated,
        )
    changed = ["last_contact_at", "updated_at"]
    contact.last_contact_at = now
    if phone and not contact.phone:
        contact.phone = phone
        changed.append("phone")
    if name and not contact.name:
        contact.name = name.strip()[:150]
        changed.append("name")
    contact.save(update_fields=changed)
    return contact


def _message_create_once(*, external_id: str, **fields: Any) -> tuple[Message, bool]:
    """Insert a message unless one with ``external_id`` exists; return it and whether it is new.

    A savepoint: a concurrent insert of the same external id (a redelivery racing the first
    delivery) is a duplicate to return, not an error that aborts the caller's transaction."""
    try:
        with transaction.atomic():
            return Message.objects.create(external_id=external_id, **fields), True
    except IntegrityError:
        found = Message.objects.select_related("conversation").get(external_id=external_id)
        return found, False


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


def _human_hold_expired(conversation: Conversation, now: datetime) -> bool:
    return (
        conversation.mode == Conversation.Mode.HUMAN
        and conversation.human_until is not None
        and conversation.human_until <= now
    )


def inbound_message_record(
    *,
    channel: str,
    channel_ref: str,
    contact_wa_id: str,
    contact_phone: str | None,
    contact_name: str | None,
    external_id: str,
    kind: str,
    text: str,
    media: dict[str, Any] | None,
    sent_at: datetime,
    agent_id: int | None = None,
) -> InboundRecord:
    """Store one customer message: ``inbound_messages_record`` with a single item.
    ``agent_id`` (the simulator) binds a new conversation to an agent; otherwise the engine
    picks the default agent."""
    item = InboundMessage(
        channel=channel,
        channel_ref=channel_ref,
        contact_wa_id=contact_wa_id,
        contact_phone=contact_phone,
        contact_name=contact_name,
        external_id=external_id,
        kind=kind,
        text=text,
        media=media,
        sent_at=sent_at,
        agent_id=agent_id,
    )
    record = inbound_messages_record(items=[item])[0]
    record.conversation  # noqa: B018 - loaded now, while the tenant's schema is current
    return record


def _check(item: InboundMessage) -> None:
    if item.channel not in _CHANNELS:
        raise ValidationError(f"Unknown channel {item.channel!r}.")
    if item.kind not in _INBOUND_KINDS:
        raise ValidationError(f"Unknown message kind {item.kind!r}.")
    if not item.external_id or not item.contact_wa_id:
        raise ValidationError("external_id and contact_wa_id are required.")


def _consent_word(text: str) -> str:
    said = _normalize(text)
    if not said:
        return ""
    if _asks_to_stop(said):
        return "out"
    return "in" if _asks_to_start(said) else ""


def inbound_messages_record(
    *, items: list[InboundMessage], wait_for_disk: bool = True
) -> list[InboundRecord]:
    """Store customer messages in order, idempotently on ``external_id``; one record per item.

    Creates contacts and conversations (one per contact, channel and channel_ref) on first
    contact, reopens closed conversations, ends expired business-phone holds, binds a
    conversation to the item's ``agent_id`` (the simulator), and marks a contact opted out (or
    back in) when a text says so. A redelivered ``external_id`` (already stored, or earlier in
    the same call) changes nothing and comes back with ``created=False``.

    The storing runs in PostgreSQL (``eva_inbound_messages``, migration 0003): one statement,
    atomic by itself (no transaction block needed), one round trip for a whole batch, which
    is what lets the WhatsApp consumer store what one stream read
    returned at a thousand messages a second. Callers then call
    ``apps.agents.services.reply_schedule`` for each created text (voice notes: after the
    transcript is set). Raises ValidationError (nothing stored) if any item has an unknown
    channel or kind, or lacks its ids.

    ``wait_for_disk=False`` commits asynchronously (stored and visible at once, on disk within
    a moment): only for callers that keep their own copy until ``durability_wait()`` returned,
    as the WhatsApp consumer keeps its stream entries unacknowledged.
    """
    for item in items:
        _check(item)
    payload = [
        {
            "ord": position,
            "external_id": item.external_id,
            "wa_id": item.contact_wa_id,
            "phone": item.contact_phone or "",
            "name": (item.contact_name or "").strip()[:150],
            "simulated": item.channel == Conversation.Channel.SIMULATOR,
            "channel": item.channel,
            "channel_ref": item.channel_ref or "",
            "kind": item.kind,
            "text": item.text or "",
            "media": item.media,
            "sent_at": item.sent_at.isoformat(),
            "agent_id": item.agent_id,
            "preview": _preview(item.text or f"[{Message.Kind(item.kind).label}]"),
            "consent": _consent_word(item.text or ""),
        }
        for position, item in enumerate(items)
    ]
    now = timezone.now()
    # One statement commits by itself; inside a caller's transaction it gets a savepoint, so a
    # refusal leaves the caller's transaction usable (the consumer then retries one by one).
    scope = transaction.atomic() if connection.in_atomic_block else contextlib.nullcontext()
    with scope, connection.cursor() as cursor:
        cursor.execute(
            "SELECT item_external_id, message_id, message_conversation_id "
            "FROM eva_inbound_messages(%s::jsonb, %s) "
            # Local to this transaction: it decides whether its commit waits for the disk.
            "CROSS JOIN set_config('synchronous_commit', %s, true)",
            [json.dumps(payload, cls=DjangoJSONEncoder), now, "on" if wait_for_disk else "off"],
        )
        stored = {external_id: (pk, conversation) for external_id, pk, conversation in cursor}
    twins: dict[str, Message] = {}
    if len(stored) < len(items):  # redeliveries (or the same id twice in this call)
        twins = {
            str(message.external_id): message
            for message in Message.objects.filter(
                external_id__in=[i.external_id for i in items if i.external_id not in stored]
            )
        }
    records = []
    new: dict[str, Message] = {}
    for item in items:
        if item.external_id in new:
            # The same id twice in one call: stored once, the second is a redelivery.
            records.append(InboundRecord(message=new[item.external_id], created=False))
        elif item.external_id not in stored:
            records.append(InboundRecord(message=twins[item.external_id], created=False))
        else:
            message_id, conversation_id = stored[item.external_id]
            message = Message(
                pk=message_id,
                conversation_id=conversation_id,
                direction=Message.Direction.IN,
                sender=Message.Sender.CUSTOMER,
                kind=item.kind,
                text=item.text or "",
                media=item.media,
                external_id=item.external_id,
                status=Message.Status.RECEIVED,
                sent_at=item.sent_at,
                created_at=now,
            )
            message._state.adding = False
            message._state.db = connection.alias
            new[item.external_id] = message
            records.append(InboundRecord(message=message, created=True))
    return records


def durability_wait() -> None:
    """Return once everything committed so far (asynchronous commits included) is on disk.

    A transaction that takes an id commits synchronously, and PostgreSQL's log is written in
    order: its flush covers every commit before it, whichever session made it."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT txid_current()")


@transaction.atomic
def business_message_record(
    *,
    channel_ref: str,
    contact_wa_id: str,
    contact_phone: str | None,
    external_id: str,
    kind: str,
    text: str,
    media: dict[str, Any] | None,
    sent_at: datetime,
) -> InboundRecord:
    """Store a message the business typed on its own phone (not sent by EVA) and hand the
    conversation to a human for ``EVA_HUMAN_HOLD_MINUTES``: a person is talking, the bot must
    not talk over them. Idempotent on ``external_id`` (also matches EVA's own sends, whose ids
    are linked when the gateway acknowledges them)."""
    if kind not in _INBOUND_KINDS:
        raise ValidationError(f"Unknown message kind {kind!r}.")
    found = Message.objects.select_related("conversation").filter(external_id=external_id).first()
    if found is not None:
        return InboundRecord(message=found, created=False)
    now = timezone.now()
    contact = _contact_for(
        wa_id=contact_wa_id, phone=contact_phone, name=None, now=now, simulated=False
    )
    conversation, _ = Conversation.objects.select_for_update().get_or_create(
        contact=contact, channel=Conversation.Channel.WHATSAPP, channel_ref=channel_ref or ""
    )
    message, created = _message_create_once(
        conversation=conversation,
        direction=Message.Direction.OUT,
        sender=Message.Sender.BUSINESS,
        kind=kind,
        text=text or "",
        media=media,
        external_id=external_id,
        status=Message.Status.SENT,
        sent_at=sent_at,
    )
    if not created:
        return InboundRecord(message=message, created=False)
    if conversation.mode != Conversation.Mode.CLOSED:
        hold_until = now + timedelta(minutes=settings.EVA_HUMAN_HOLD_MINUTES)
        if conversation.mode == Conversation.Mode.BOT or conversation.human_until is not None:
            # A human mode set by staff (no end time) stays open-ended.
            conversation.human_until = hold_until
        conversation.mode = Conversation.Mode.HUMAN
        conversation.handoff_reason = "business replied from its phone"
        conversation.handoff_at = now
        conversation.save(update_fields=["mode", "human_until", "handoff_reason", "handoff_at"])
        _cancel_pending_bot_replies(conversation)
    _touch(conversation, message, unread=False)
    return InboundRecord(message=message, created=True)


@transaction.atomic
def message_transcript_set(*, message_id: int, transcript: str, language: str | None) -> Message:
    """Attach a voice note's transcript; it then counts as the message's text (and can opt out)."""
    message = Message.objects.select_related("conversation__contact").get(pk=message_id)
    message.transcript = transcript.strip()
    message.transcript_language = (language or "")[:10]
    message.save(update_fields=["transcript", "transcript_language"])
    conversation = message.conversation
    if message.direction == Message.Direction.IN:
        _apply_consent(conversation.contact, message.transcript, timezone.now())
        if conversation.messages.order_by("-id").values_list("id", flat=True).first() == message.pk:
            conversation.last_message_preview = _preview(message.transcript)
            conversation.save(update_fields=["last_message_preview"])
    return message


# --- delivery status --------------------------------------------------------------------------


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


# --- bot replies ------------------------------------------------------------------------------


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
        status=Message.Status.QUEUED,
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


# --- handoff and staff ------------------------------------------------------------------------


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
    return conversation


def conversation_mark_read(*, conversation: Conversation) -> None:
    if conversation.unread_count:
        Conversation.objects.filter(pk=conversation.pk).update(unread_count=0)
        conversation.unread_count = 0


@transaction.atomic
def staff_message_send(*, conversation_id: int, author: User, text: str) -> Message:
    """A staff member's reply: stored, queued and handed to the channel for delivery. Replying
    takes the conversation over (mode ``human``) so the bot does not answer alongside staff."""
    text = text.strip()
    if not text:
        raise ValidationError("Write a message first.")
    if len(text) > 4096:
        raise ValidationError("WhatsApp messages are limited to 4,096 characters.")
    conversation = Conversation.objects.select_for_update().get(pk=conversation_id)
    if conversation.mode == Conversation.Mode.CLOSED:
        raise ValidationError("This conversation is closed.")
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
    message = Message.objects.create(
        conversation=conversation,
        direction=Message.Direction.OUT,
        sender=Message.Sender.STAFF,
        kind=Message.Kind.TEXT,
        text=text,
        status=Message.Status.QUEUED,
        author=author,
        sent_at=timezone.now(),
    )
    conversation.unread_count = 0
    conversation.save(update_fields=["unread_count"])
    _touch(conversation, message, unread=False)
    _deliver_on_commit(message.pk)
    return message


def bot_reply_deliver(*, message_id: int) -> None:
    """Hand a stored bot reply to the channel's outbound side (after the current commit)."""
    _deliver_on_commit(message_id)


# --- contacts / leads -------------------------------------------------------------------------


@transaction.atomic
def contact_update(*, contact: Contact, **fields: Any) -> Contact:
    """Staff edits of a lead: any of the lead fields, ``stage``, ``language``."""
    allowed = {*LEAD_FIELDS, "stage", "language", "phone"}
    unknown = set(fields) - allowed
    if unknown:
        raise ValidationError(f"Unknown contact fields: {', '.join(sorted(unknown))}.")
    for name, value in fields.items():
        setattr(contact, name, value if value is not None else "")
    contact.full_clean(exclude=["wa_id", "wa_ids"])
    contact.save(update_fields=[*fields, "updated_at"])
    return contact


@transaction.atomic
def contact_lead_fields_fill(*, contact_id: int, values: dict[str, str]) -> list[str]:
    """Fill empty lead fields with values the model extracted (the engine only passes values the
    customer actually wrote). Never overwrites what staff or an earlier turn set. Returns the
    names of the fields filled."""
    contact = Contact.objects.select_for_update().get(pk=contact_id)
    filled = []
    for name in LEAD_FIELDS:
        value = (values.get(name) or "").strip()
        if not value or getattr(contact, name):
            continue
        max_length = getattr(Contact._meta.get_field(name), "max_length", None)
        setattr(contact, name, value[:max_length] if max_length else value)
        filled.append(name)
    if filled:
        if contact.stage == Contact.Stage.NEW and ({"email", "budget"} & set(filled)):
            # Contact details or a budget mean the lead engaged: qualified, for the sales team.
            contact.stage = Contact.Stage.QUALIFIED
            filled.append("stage")
        contact.save(update_fields=[*filled, "updated_at"])
    return filled


@transaction.atomic
def contact_language_set(*, contact_id: int, language: str) -> None:
    Contact.objects.filter(pk=contact_id).update(language=language[:10])
