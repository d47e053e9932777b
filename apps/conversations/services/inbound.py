"""Storing what customers send (and what the business types on its own phone), idempotently."""

from __future__ import annotations

import dataclasses
import itertools
import json
import threading
import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.serializers.json import DjangoJSONEncoder
from django.db import IntegrityError, connection, transaction
from django.db.models import Q
from django.utils import timezone
from psycopg import errors as psycopg_errors
from psycopg import generators, pq

from apps.conversations.models import Contact, Conversation, Message
from apps.conversations.services._thread import _preview, _touch
from apps.conversations.services.consent import _apply_consent, _consent_word
from apps.conversations.services.delivery import _cancel_pending_bot_replies
from apps.conversations.services.handoff import announce
from apps.webhooks.events import Event

_INBOUND_KINDS = {Message.Kind.TEXT, Message.Kind.AUDIO, Message.Kind.IMAGE, Message.Kind.DOCUMENT}
_CHANNELS = frozenset(Conversation.Channel.values)


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
    # Why the message has no stored media although it had some ("media_expired: ..."): kept
    # as the message's error, for staff to see and for the transcription to say.
    media_error: str = ""


class InboundRecord:
    """A stored message and whether this call created it (False: stored before).

    ``message`` is built on first use when the call stored it (from what was sent and the ids
    PostgreSQL returned; no query): a consumer storing thousands of messages a second builds
    only the ones it hands on."""

    def __init__(
        self,
        *,
        created: bool,
        message: Message | None = None,
        stored: tuple[int, int, InboundMessage, datetime] | None = None,
    ) -> None:
        if (message is None) == (stored is None):
            raise TypeError("give the record its message or what was stored (one of them)")
        self.created = created
        self._message = message
        self._stored = stored

    @property
    def message(self) -> Message:
        if self._message is None:
            assert self._stored is not None
            self._message = _stored_message(*self._stored)
        return self._message

    @property
    def message_id(self) -> int:
        return self._stored[0] if self._stored is not None else self.message.pk

    @property
    def item(self) -> InboundMessage | None:
        """What was stored, when this call stored it."""
        return self._stored[2] if self._stored is not None else None

    @property
    def conversation(self) -> Conversation:
        """The message's conversation (loaded on first use, in the current tenant's schema)."""
        return self.message.conversation


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
    media_error: str = "",
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
        media_error=media_error,
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

    ``inbound_messages_send`` does the same in two steps, so that the caller can work while
    PostgreSQL stores the messages.
    """
    return inbound_messages_send(items=items, wait_for_disk=wait_for_disk).records()


_STORE = (
    "SELECT item_external_id, message_id, message_conversation_id "
    "FROM eva_inbound_messages({items}::jsonb, {now}::timestamptz) "
    # Local to this transaction: it decides whether its commit waits for the disk.
    "CROSS JOIN set_config('synchronous_commit', {sync}, true)"
)
_STORE_NOW = _STORE.format(items="%s", now="%s", sync="%s")
_STORE_SENT = _STORE.format(items="$1", now="$2", sync="$3").encode()
StoredRow = tuple[str, int, int]  # (external id, message id, conversation id)


class InboundStoring:
    """Customer messages handed to PostgreSQL (``inbound_messages_send``); ``records()`` waits
    for the database and returns what ``inbound_messages_record`` returns."""

    def __init__(
        self,
        items: list[InboundMessage],
        now: datetime,
        *,
        rows: list[StoredRow] | None = None,
        sent: Any = None,
    ) -> None:
        self.items = items
        self.now = now
        self._rows = rows
        self._sent = sent  # the connection the statement is running on
        self._sent_at = time.monotonic()

    def records(self) -> list[InboundRecord]:
        if self._rows is None:
            self._rows = _received(self._sent)
            self._sent = None
            if connection.queries_logged:
                # Counted like the statements Django runs (assertNumQueries, DEBUG).
                connection.queries_log.append(
                    {"sql": _STORE_NOW, "time": f"{time.monotonic() - self._sent_at:.3f}"}
                )
        records = _records(self.items, self._rows, self.now)
        _note_media_errors(records)
        return records


def _note_media_errors(records: list[InboundRecord]) -> None:
    """Store why new messages lack their media (rare: expired or too large files). Not in the
    storing function: the hot path stays one statement; a consumer that dies between the two
    loses only this note."""
    noted: dict[str, list[int]] = {}
    for record in records:
        item = record.item
        if record.created and item is not None and item.media_error:
            noted.setdefault(item.media_error[:1000], []).append(record.message_id)
    for error, ids in noted.items():
        Message.objects.filter(pk__in=ids).update(error=error)


def inbound_messages_send(
    *, items: list[InboundMessage], wait_for_disk: bool = True
) -> InboundStoring:
    """Start storing ``items`` (see ``inbound_messages_record``) and return without waiting:
    ``inbound_messages_prepare(...).send()``."""
    return inbound_messages_prepare(items=items, wait_for_disk=wait_for_disk).send()


def inbound_messages_prepare(
    *, items: list[InboundMessage], wait_for_disk: bool = True
) -> InboundBatch:
    """``items`` checked and made ready to send, without touching the database (the WhatsApp
    consumer prepares a read while PostgreSQL still stores the one before). Raises
    ValidationError for a bad item."""
    for item in items:
        _check(item)
    items = [_storable(item) for item in items]
    payload = json.dumps(_payload(items), cls=DjangoJSONEncoder)
    return InboundBatch(items, payload, timezone.now(), "on" if wait_for_disk else "off")


# The storing statement is prepared once per database connection (PostgreSQL parses and plans
# it once; it is planned again by itself when the search path names another tenant's schema),
# and again under a new name after any refusal (a deployment that replaced the function).
_STATEMENT_NUMBERS = itertools.count(1)
# This thread's (database connection, name of the statement prepared on it): Django's
# connections are per thread, and a new connection is a new ``pgconn``.
_prepared = threading.local()


class InboundBatch:
    """Items ready to store (``inbound_messages_prepare``); ``send()`` hands them to PostgreSQL."""

    def __init__(self, items: list[InboundMessage], payload: str, now: datetime, sync: str):
        self.items = items
        self._payload = payload
        self._now = now
        self._sync = sync

    def send(self) -> InboundStoring:
        """Outside a transaction the statement is sent and PostgreSQL runs it while the caller
        goes on (the WhatsApp consumer reads the next entries meanwhile); until ``records()``
        returned, nothing else may use the connection (psycopg refuses: "another command is
        already in progress"). Inside a transaction it runs at once, in a savepoint, so that a
        refusal leaves the caller's transaction usable."""
        if connection.in_atomic_block:
            with transaction.atomic(), connection.cursor() as cursor:
                cursor.execute(_STORE_NOW, [self._payload, self._now, self._sync])
                return InboundStoring(self.items, self._now, rows=list(cursor.fetchall()))
        with connection.cursor():
            pass  # opening a cursor connects and puts the tenant's search path in place
        with connection.wrap_database_errors:
            conn = connection.connection
            conn.pgconn.send_query_prepared(
                _statement_on(conn),
                [self._payload.encode(), self._now.isoformat().encode(), self._sync.encode()],
            )
            conn.wait(generators.send(conn.pgconn))
        return InboundStoring(self.items, self._now, sent=conn)


def _statement_on(conn: Any) -> bytes:
    """The name of the storing statement prepared on ``conn``, preparing it if it is not (a
    new connection: Django reconnects after an error or CONN_MAX_AGE; or one that refused)."""
    known = getattr(_prepared, "statement", None)
    if known is not None and known[0] is conn.pgconn:
        return bytes(known[1])
    name = b"eva_inbound_messages_%d" % next(_STATEMENT_NUMBERS)
    conn.wait(_prepare(conn, name))
    _prepared.statement = (conn.pgconn, name)
    return name


def _prepare(conn: Any, name: bytes) -> Any:
    """A generator (psycopg's waiting protocol) preparing the storing statement on ``conn``."""
    pgconn = conn.pgconn
    pgconn.send_prepare(name, _STORE_SENT)
    yield from generators.send(pgconn)
    results = yield from generators.fetch_many(pgconn)
    for result in results:
        if result.status != pq.ExecStatus.COMMAND_OK:
            raise psycopg_errors.error_from_result(result, encoding=conn.info.encoding)


def _received(conn: Any) -> list[StoredRow]:
    """Wait for the statement ``inbound_messages_send`` sent on ``conn``; its rows."""
    with connection.wrap_database_errors:
        results = conn.wait(generators.fetch_many(conn.pgconn))
        rows: list[StoredRow] = []
        for result in results:
            if result.status != pq.ExecStatus.TUPLES_OK:
                _prepared.statement = None
                raise psycopg_errors.error_from_result(result, encoding=conn.info.encoding)
            rows.extend(
                (
                    bytes(result.get_value(row, 0) or b"").decode(),
                    int(result.get_value(row, 1) or 0),
                    int(result.get_value(row, 2) or 0),
                )
                for row in range(result.ntuples)
            )
    return rows


def _storable(item: InboundMessage) -> InboundMessage:
    """The item without NUL characters: PostgreSQL's text cannot hold them (its JSON refuses
    the whole batch), and a customer's text or a file name can carry one."""
    media = item.media or {}
    if not any(
        isinstance(value, str) and "\x00" in value
        for value in (item.text, item.contact_name, *media.values())
    ):
        return item

    def clean(value: Any) -> Any:
        return value.replace("\x00", "") if isinstance(value, str) else value

    return dataclasses.replace(
        item,
        text=clean(item.text),
        contact_name=clean(item.contact_name),
        media={key: clean(value) for key, value in media.items()} if item.media else item.media,
    )


def _payload(items: list[InboundMessage]) -> list[dict[str, Any]]:
    return [
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


def _records(
    items: list[InboundMessage], rows: list[StoredRow], now: datetime
) -> list[InboundRecord]:
    stored = {external_id: (pk, conversation) for external_id, pk, conversation in rows}
    twins: dict[str, Message] = {}
    if len(stored) < len(items):  # redeliveries (or the same id twice in this call)
        twins = {
            str(message.external_id): message
            for message in Message.objects.filter(
                external_id__in=[i.external_id for i in items if i.external_id not in stored]
            )
        }
    records = []
    new: dict[str, InboundRecord] = {}
    for item in items:
        if item.external_id in new:
            # The same id twice in one call: stored once, the second is a redelivery.
            first = new[item.external_id]
            records.append(InboundRecord(message=first.message, created=False))
        elif item.external_id not in stored:
            records.append(InboundRecord(message=twins[item.external_id], created=False))
        else:
            message_id, conversation_id = stored[item.external_id]
            record = InboundRecord(created=True, stored=(message_id, conversation_id, item, now))
            new[item.external_id] = record
            records.append(record)
    return records


_MESSAGE_COLUMNS = tuple(field.attname for field in Message._meta.concrete_fields)


def _stored_message(pk: int, conversation_id: int, item: InboundMessage, now: datetime) -> Message:
    """The Message row eva_inbound_messages stored for ``item``, as if loaded from the database.

    Built from its columns in order (Model.from_db): 18 µs instead of 25 with keyword arguments,
    and a busy consumer builds thousands a second. A column added to Message must be added here
    (KeyError otherwise) and to the function (migration 0003's docstring)."""
    columns = {
        "id": pk,
        "conversation_id": conversation_id,
        "direction": Message.Direction.IN.value,
        "sender": Message.Sender.CUSTOMER.value,
        "kind": item.kind,
        "text": item.text or "",
        "transcript": "",
        "transcript_language": "",
        "media": item.media,
        "external_id": item.external_id,
        "command_event_id": None,
        "status": Message.Status.RECEIVED.value,
        "error": item.media_error[:1000],
        "author_id": None,
        "provider": "",
        "model": "",
        "latency_ms": None,
        "tokens_in": None,
        "tokens_out": None,
        "usage_id": None,
        "citations": [],
        "is_handoff_notice": False,
        "replied_to_ids": [],
        "sent_at": item.sent_at,
        "created_at": now,
    }
    return Message.from_db(
        connection.alias, _MESSAGE_COLUMNS, [columns[name] for name in _MESSAGE_COLUMNS]
    )


def durability_position() -> tuple[int, int]:
    """(the end of the database's log, the end of what is on disk), as byte positions.

    Everything this connection committed before the call (asynchronous commits included) lies
    before the first; it is on disk once a later call's second reaches that position. One cheap
    query that waits for nothing: PostgreSQL writes asynchronous commits to disk on its own
    within a few hundred milliseconds (``wal_writer_delay``)."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT (pg_current_wal_insert_lsn() - '0/0')::bigint, "
            "(pg_current_wal_flush_lsn() - '0/0')::bigint"
        )
        written, on_disk = cursor.fetchone()
    return written, on_disk


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
        taken_over = conversation.mode == Conversation.Mode.BOT
        if taken_over or conversation.human_until is not None:
            # A human mode set by staff (no end time) stays open-ended.
            conversation.human_until = hold_until
        conversation.mode = Conversation.Mode.HUMAN
        conversation.handoff_reason = "business replied from its phone"
        conversation.handoff_at = now
        conversation.save(update_fields=["mode", "human_until", "handoff_reason", "handoff_at"])
        _cancel_pending_bot_replies(conversation)
        if taken_over:
            announce(conversation, Event.CONVERSATION_HANDED_OFF)
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
