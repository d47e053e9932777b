"""Apply one validated inbound event (docs/streams.md) in its tenant's schema.

The tenant comes from the public-schema index by ``session_id``; the event's ``tenant_schema``
must agree, or the event is refused (a gateway configured with the wrong tenant must not write
into another tenant's data). Each event is applied in one transaction; the consumer acknowledges
the stream entry only after it committed.

``handle_batch`` applies what one stream read returned: consecutive customer messages of a
tenant are stored together in one transaction (a handful of statements for the lot, which is
what lets one consumer keep up with a thousand messages a second); every other event is applied
on its own, in stream order. If a batch transaction fails, its events are applied one by one, so
one bad event cannot hold back the others or take them down with it. ``submit_batch`` does the
same in two steps (the consumer reads on while PostgreSQL stores a read of customer messages).

What happens after a customer message is stored (the reply engine, transcription) is not this
app's business: the caller passes ``on_customer_text`` / ``on_voice_note`` hooks, which run after
the commit, inside the tenant's schema.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from django.db import transaction
from django_tenants.utils import tenant_context

from apps.channels import contract, services
from apps.channels.consumer import PermanentEventError
from apps.channels.selectors import session_tenant_resolve
from apps.conversations import services as conversations
from apps.conversations.models import Message
from apps.ops.services import dead_letter_record
from apps.tenants.models import Tenant
from eva.db import current_schema, use_tenant_schema

logger = logging.getLogger(__name__)

# whatsapp-web.js message types mapped onto the kinds conversations stores. Types without a
# stored file of their own (location, vcard, ...) are kept as text (their body).
_KINDS = {
    "chat": Message.Kind.TEXT,
    "ptt": Message.Kind.AUDIO,
    "audio": Message.Kind.AUDIO,
    "image": Message.Kind.IMAGE,
    "sticker": Message.Kind.IMAGE,
    "document": Message.Kind.DOCUMENT,
    "video": Message.Kind.DOCUMENT,
}

MessageHook = Callable[[Message], None]
TENANT_CACHE_S = 30.0
# One outcome per event of a batch: None when applied (and committed), else why not.
Outcome = BaseException | None


def _media(ref: dict[str, Any] | None) -> dict[str, Any] | None:
    """The contract's media reference in conversations' shape (``ref`` = the storage key)."""
    if not ref:
        return None
    media = {"ref": ref["key"], "mime": ref["mime"], "size": ref["size"], "sha256": ref["sha256"]}
    if ref.get("filename"):
        media["filename"] = ref["filename"]
    return media


def _e164(phone: str | None) -> str | None:
    """The contract's phones are digits only; contacts store E.164 with the plus."""
    return f"+{phone}" if phone else None


def _deferred(hook: MessageHook, record: conversations.InboundRecord) -> Callable[[], None]:
    """``hook(message)`` as an on-commit callback whose name says which hook and message (Django
    logs it when a robust callback fails)."""

    def call() -> None:
        hook(record.message)

    call.__qualname__ = f"{getattr(hook, '__qualname__', repr(hook))}(message {record.message_id})"
    return call


def _nothing() -> None:
    pass


def _kind(event: dict[str, Any]) -> str:
    """The message's kind; a voice note, picture or document whose file could not be stored
    (expired, too large: ``media_error``) keeps its kind, so that staff see what was sent and
    a voice note is answered (the customer is asked to write) instead of dropped."""
    kind = _KINDS.get(event["msg_type"], Message.Kind.TEXT)
    return kind if event["media"] is not None or event["has_media"] else Message.Kind.TEXT


def _media_error(event: dict[str, Any]) -> str:
    error = event.get("media_error") if event["media"] is None else None
    return f"{error['code']}: {error['message']}" if error else ""


@dataclass
class InboundEventHandler:
    on_customer_text: MessageHook | None = None
    on_voice_note: MessageHook | None = None
    # False: customer messages commit without waiting for the disk; the consumer acknowledges
    # them once durable_position() shows them on disk, or after make_durable()
    # (apps.channels.consumer).
    wait_for_disk: bool = True
    _tenant_active: bool = True
    _tenants: dict[str, tuple[float, Tenant]] = field(default_factory=dict)

    def __call__(self, event: dict[str, Any]) -> None:
        tenant = self._tenant_of(event)
        self._tenant_active = tenant.is_active
        with tenant_context(tenant), transaction.atomic():
            getattr(self, f"_on_{event['type']}")(event)

    def handle_batch(self, events: list[dict[str, Any]]) -> list[Outcome]:
        """Apply validated events in order; return one outcome per event (None = committed)."""
        outcomes: list[Outcome] = [None] * len(events)
        run: list[int] = []  # consecutive customer messages, stored together
        for index, event in enumerate(events):
            if event["type"] == "message":
                run.append(index)
                continue
            self._store_run(events, run, outcomes)
            run = []
            outcomes[index] = self._apply_one(event)
        self._store_run(events, run, outcomes)
        return outcomes

    def _apply_one(self, event: dict[str, Any]) -> Outcome:
        try:
            self(event)
        except Exception as exc:
            return exc
        return None

    def submit_batch(
        self,
        events: list[dict[str, Any]],
        connection_needed: Callable[[], None] | None = None,
    ) -> Callable[[], list[Outcome]]:
        """``handle_batch`` in two steps: what it returns finishes the work and returns the
        outcomes. A read of one tenant's customer messages (what a busy number's reads are) is
        prepared, then only sent to the database here; the consumer reads its next entries
        while PostgreSQL stores these, and nothing else may use the connection until the
        returned callable ran. Any other read is applied here, as ``handle_batch`` applies it.

        ``connection_needed`` is called before the first use of the database connection: the
        consumer finishes the read it left in flight then, so that preparing this read (the
        messages checked and serialized) overlaps with PostgreSQL storing the one before."""
        needed = connection_needed or _nothing
        tenant = self._sole_tenant(events, needed)
        if tenant is None:
            needed()
            outcomes = self.handle_batch(events)
            return lambda: outcomes
        sent = self._send_run(tenant, events, needed)
        if isinstance(sent, BaseException):
            needed()  # (a refusal may come before the connection was needed)
            outcomes = self._retry_one_by_one(events, sent)
            return lambda: outcomes

        def finish() -> list[Outcome]:
            error = self._finish_run(*sent)
            if error is None:
                return [None] * len(events)
            return self._retry_one_by_one(events, error)

        return finish

    def _sole_tenant(
        self, events: list[dict[str, Any]], connection_needed: Callable[[], None]
    ) -> Tenant | None:
        """The tenant of a read made only of its customer messages; else None. Resolving
        consults the database only when a session is not remembered (``connection_needed()``
        first)."""
        if not events or any(event["type"] != "message" for event in events):
            return None
        try:
            tenants = [self._tenant_of(event, connection_needed) for event in events]
        except PermanentEventError:
            return None
        if any(tenant.schema_name != tenants[0].schema_name for tenant in tenants):
            return None
        return tenants[0]

    def _store_run(
        self, events: list[dict[str, Any]], run: list[int], outcomes: list[Outcome]
    ) -> None:
        by_tenant: dict[str, tuple[Tenant, list[int]]] = {}
        for index in run:
            try:
                tenant = self._tenant_of(events[index])
            except PermanentEventError as exc:
                outcomes[index] = exc
                continue
            by_tenant.setdefault(tenant.schema_name, (tenant, []))[1].append(index)
        for tenant, indexes in by_tenant.values():
            batch = [events[index] for index in indexes]
            sent = self._send_run(tenant, batch)
            error = sent if isinstance(sent, BaseException) else self._finish_run(*sent)
            if error is not None:
                for index, outcome in zip(
                    indexes, self._retry_one_by_one(batch, error), strict=True
                ):
                    outcomes[index] = outcome

    def _send_run(
        self,
        tenant: Tenant,
        events: list[dict[str, Any]],
        connection_needed: Callable[[], None] = _nothing,
    ) -> tuple[conversations.InboundStoring | None, bool] | BaseException:
        """Send one tenant's customer messages to the database (one statement, committed by
        itself; the hooks run once it committed): (what is being stored, whether the tenant is
        active), or the error that refused them."""
        try:
            batch = self._messages_prepare(events)
            connection_needed()
            # The connection is left in the tenant's schema (see _enter).
            self._enter(tenant)
            return (batch.send() if batch is not None else None), tenant.is_active
        except Exception as exc:
            return exc

    def _finish_run(
        self, storing: conversations.InboundStoring | None, active: bool
    ) -> BaseException | None:
        try:
            self._messages_stored(storing, active)
        except Exception as exc:
            return exc
        return None

    def _retry_one_by_one(
        self, events: list[dict[str, Any]], error: BaseException
    ) -> list[Outcome]:
        if len(events) == 1:
            return [error]
        logger.warning("a batch of %s messages failed; applying them one by one", len(events))
        return [self._apply_one(event) for event in events]

    @staticmethod
    def make_durable() -> None:
        """Everything applied so far is on disk once this returns."""
        conversations.durability_wait()

    @staticmethod
    def durable_position() -> tuple[int, int]:
        """(log position after everything applied so far, log position on disk): what was
        applied is on disk once a later call's second value reaches this call's first."""
        return conversations.durability_position()

    @staticmethod
    def _enter(tenant: Tenant) -> None:
        """Put the connection in the tenant's schema and leave it there after the batch.

        A busy number's reads then need no SET search_path each: that statement costs a round
        trip and makes PostgreSQL plan the storing function's statements again (about a
        millisecond a read). Public tables (the session index, dead letters) stay reachable,
        since django-tenants keeps ``public`` on the search path; ``tenant_context`` elsewhere
        restores whatever schema it found.
        """
        if current_schema() != tenant.schema_name:
            use_tenant_schema(tenant)

    def _tenant_of(
        self, event: dict[str, Any], connection_needed: Callable[[], None] = _nothing
    ) -> Tenant:
        tenant = self._tenant(event["session_id"], connection_needed)
        if tenant is None:
            raise PermanentEventError(
                f"no tenant has WhatsApp session {event['session_id']!r}", code="unknown_session"
            )
        if tenant.schema_name != event["tenant_schema"]:
            raise PermanentEventError(
                f"session {event['session_id']!r} belongs to {tenant.schema_name!r}, "
                f"not {event['tenant_schema']!r}",
                code="wrong_tenant",
            )
        return tenant

    def _tenant(
        self, session_id: str, connection_needed: Callable[[], None] = _nothing
    ) -> Tenant | None:
        """The index lookup, remembered briefly: a session never changes tenant (its id is
        made from the tenant's schema), and every event of a busy number would otherwise pay a
        query and a schema switch. Unknown sessions are not remembered, so a number created a
        moment ago is found at once; a deactivation is seen within TENANT_CACHE_S."""
        now = time.monotonic()
        cached = self._tenants.get(session_id)
        if cached is not None and cached[0] > now:
            return cached[1]
        connection_needed()
        tenant = session_tenant_resolve(session_id=session_id)
        if tenant is not None:
            self._tenants[session_id] = (now + TENANT_CACHE_S, tenant)
        else:
            self._tenants.pop(session_id, None)
        return tenant

    def _on_message(self, event: dict[str, Any]) -> None:
        batch = self._messages_prepare([event])
        self._messages_stored(batch.send() if batch else None, self._tenant_active)

    def _messages_prepare(self, events: list[dict[str, Any]]) -> conversations.InboundBatch | None:
        # Sales agents answer people, not groups: a group message is acknowledged unstored.
        for event in events:
            if event["is_group"]:
                logger.info("group message ignored", extra={"session_id": event["session_id"]})
        items = [
            conversations.InboundMessage(
                channel="whatsapp",
                channel_ref=event["session_id"],
                contact_wa_id=event["chat_id"],
                contact_phone=_e164(event["from_phone"]),
                contact_name=event["push_name"],
                external_id=event["wa_id"],
                kind=_kind(event),
                text=event["body"],
                media=_media(event["media"]),
                sent_at=contract.parse_ts(event["wa_timestamp"]),
                media_error=_media_error(event),
            )
            for event in events
            if not event["is_group"]
        ]
        if not items:
            return None
        return conversations.inbound_messages_prepare(items=items, wait_for_disk=self.wait_for_disk)

    def _messages_stored(self, storing: conversations.InboundStoring | None, active: bool) -> None:
        """Wait for the messages being stored; hand the new ones to the hooks."""
        if storing is None:
            return
        records = storing.records()
        if not active:
            # A deactivated tenant keeps its data but gets no automated replies.
            return
        for record in records:
            item = record.item
            if not record.created or item is None:
                continue  # redelivered: stored and handed on the first time
            if item.kind == Message.Kind.AUDIO and self.on_voice_note is not None:
                hook = self.on_voice_note
            elif item.text.strip() and self.on_customer_text is not None:
                hook = self.on_customer_text
            else:
                continue
            # robust: a hook that fails (the broker unreachable) is logged with its message and
            # does not stop the hooks of the other messages of the read, nor make the consumer
            # store the read again message by message.
            transaction.on_commit(_deferred(hook, record), robust=True)

    def _on_outgoing_from_phone(self, event: dict[str, Any]) -> None:
        if event["is_group"]:
            return
        conversations.business_message_record(
            channel_ref=event["session_id"],
            contact_wa_id=event["chat_id"],
            contact_phone=_e164(event["to_phone"]),
            external_id=event["wa_id"],
            kind=_kind(event),
            text=event["body"],
            media=_media(event["media"]),
            sent_at=contract.parse_ts(event["wa_timestamp"]),
        )

    def _on_message_ack(self, event: dict[str, Any]) -> None:
        conversations.message_delivery_ack(
            command_event_id=event["command_event_id"],
            external_id=event["wa_id"],
            status=event["status"],
            error="whatsapp reported an error" if event["status"] == "error" else "",
        )

    def _on_session_status(self, event: dict[str, Any]) -> None:
        session = services.whatsapp_session_status_apply(
            session_id=event["session_id"],
            status=event["status"],
            wa_state=event["wa_state"],
            reason=event["reason"],
            phone=event["phone"],
            gateway_id=event["gateway_id"],
            ts=contract.parse_ts(event["ts"]),
        )
        if session is not None and session.is_alarm:
            logger.error(
                "WhatsApp session needs attention: %s (%s)",
                event["status"],
                event["reason"] or event["wa_state"] or "",
                extra={"session_id": event["session_id"], "tenant_schema": event["tenant_schema"]},
            )

    def _on_qr(self, event: dict[str, Any]) -> None:
        services.whatsapp_session_qr_apply(
            session_id=event["session_id"],
            qr=event["qr"],
            attempt=event["attempt"],
            gateway_id=event["gateway_id"],
            ts=contract.parse_ts(event["ts"]),
        )

    def _on_command_failed(self, event: dict[str, Any]) -> None:
        error = event["error"]
        if event["command_event_id"]:
            message = Message.objects.filter(command_event_id=event["command_event_id"]).first()
            if message is not None:
                conversations.message_mark_failed(
                    message_id=message.pk, error=f"{error['code']}: {error['message']}"
                )
        # The event id names the failure, so a redelivered event updates the same dead letter.
        dead_letter_record(
            source="stream",
            name=f"gateway.{event['command_type'] or 'command'}",
            payload={"stream": event["stream"], "entry_id": event["entry_id"], "event": event},
            tenant_schema=event["tenant_schema"],
            error=error["message"],  # the code is the exception type
            attempts=event["deliveries"],
            exception_type=error["code"],
            task_id=f"command_failed:{event['event_id']}",
        )
