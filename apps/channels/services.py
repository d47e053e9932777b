"""WhatsApp sessions: create, start/stop/logout through the control stream, apply gateway events.

Functions here run in the tenant's schema (a request, a task, or the consumer inside
``tenant_context``). The public-schema index (``apps.tenants.models.WhatsAppSessionIndex``) is
reachable from there too (django-tenants keeps ``public`` on the search path) and is written in
the same transaction as the tenant's row, so the two never disagree.
"""

from __future__ import annotations

import secrets
from datetime import datetime, timedelta

from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone

from apps.channels import publisher
from apps.channels.models import WhatsAppSession
from apps.conversations import services as conversations
from apps.conversations.models import Conversation, Message
from apps.tenants.models import Tenant, WhatsAppSessionIndex
from eva.db import current_schema


class SessionStateError(ValueError):
    """The action does not fit the session's current state."""


def _tenant_schema() -> str:
    schema = current_schema()
    if schema == "public":
        raise RuntimeError("WhatsApp sessions belong to a tenant; call this inside its schema")
    return schema


def _current_tenant() -> Tenant:
    tenant = getattr(connection, "tenant", None)
    if isinstance(tenant, Tenant):
        return tenant
    return Tenant.objects.get(schema_name=_tenant_schema())


def _new_session_id(schema: str) -> str:
    # Readable in logs and folder names (LocalAuth "session-<id>"), unique across tenants
    # through the schema name; the contract allows [A-Za-z0-9_-]{1,64}.
    return f"{schema[:40]}-{secrets.token_hex(5)}"


@transaction.atomic
def whatsapp_session_create(*, label: str) -> WhatsAppSession:
    """A new, not yet connected number of the current tenant, registered in the public index."""
    schema = _tenant_schema()
    session = WhatsAppSession.objects.create(session_id=_new_session_id(schema), label=label)
    WhatsAppSessionIndex.objects.create(session_id=session.session_id, tenant=_current_tenant())
    return session


def _publish_control_on_commit(kind: str, session: WhatsAppSession) -> None:
    schema = _tenant_schema()
    session_id = session.session_id
    transaction.on_commit(
        lambda: publisher.control(kind, session_id=session_id, tenant_schema=schema)
    )


@transaction.atomic
def whatsapp_session_start(*, session: WhatsAppSession) -> WhatsAppSession:
    """Ask the gateways to run the session; the first to take its lock starts it and the QR
    follows as ``qr`` events. Starting a running session is allowed: the gateway rebuilds a
    blocked or stuck client on an explicit start."""
    session.status = WhatsAppSession.Status.START_REQUESTED
    session.qr = ""
    session.reason = ""
    session.save(update_fields=["status", "qr", "reason", "updated_at"])
    _publish_control_on_commit("start", session)
    return session


@transaction.atomic
def whatsapp_session_stop(*, session: WhatsAppSession) -> WhatsAppSession:
    """Stop the client and keep the pairing (a later start needs no new QR scan)."""
    session.status = WhatsAppSession.Status.STOP_REQUESTED
    session.qr = ""
    session.save(update_fields=["status", "qr", "updated_at"])
    _publish_control_on_commit("stop", session)
    return session


@transaction.atomic
def whatsapp_session_logout(*, session: WhatsAppSession) -> WhatsAppSession:
    """Unpair the number: the gateway logs out of WhatsApp Web and deletes the pairing."""
    session.status = WhatsAppSession.Status.LOGOUT_REQUESTED
    session.qr = ""
    session.save(update_fields=["status", "qr", "updated_at"])
    WhatsAppSessionIndex.objects.filter(session_id=session.session_id).update(phone=None)
    _publish_control_on_commit("logout", session)
    return session


def _is_stale(session: WhatsAppSession, ts: datetime) -> bool:
    return session.status_at is not None and ts < session.status_at


@transaction.atomic
def whatsapp_session_status_apply(
    *,
    session_id: str,
    status: str,
    wa_state: str | None,
    reason: str | None,
    phone: str | None,
    gateway_id: str | None,
    ts: datetime,
) -> WhatsAppSession | None:
    """Apply a ``session_status`` event: last write wins by the gateway's ``ts``.

    Returns the session, or None if the tenant has no such session (deleted meanwhile).
    """
    session = WhatsAppSession.objects.select_for_update().filter(session_id=session_id).first()
    if session is None or _is_stale(session, ts):
        return session
    session.status = status
    session.wa_state = wa_state or ""
    session.reason = reason or ""
    session.gateway_id = gateway_id or session.gateway_id
    session.status_at = ts
    fields = ["status", "wa_state", "reason", "gateway_id", "status_at", "updated_at"]
    if status != WhatsAppSession.Status.QR:
        # A QR means nothing once the client authenticated, stopped or failed.
        session.qr = ""
        fields.append("qr")
    if status == WhatsAppSession.Status.READY:
        session.ready_at = ts
        fields.append("ready_at")
    if phone and phone != session.phone:
        session.phone = phone
        fields.append("phone")
        # A number is paired to one session at a time: pairing it here moves it.
        WhatsAppSessionIndex.objects.filter(phone=phone).exclude(session_id=session_id).update(
            phone=None
        )
        WhatsAppSessionIndex.objects.filter(session_id=session_id).update(phone=phone)
    if status == WhatsAppSession.Status.LOGGED_OUT:
        WhatsAppSessionIndex.objects.filter(session_id=session_id).update(phone=None)
    session.save(update_fields=fields)
    return session


@transaction.atomic
def whatsapp_session_qr_apply(
    *, session_id: str, qr: str, attempt: int, gateway_id: str | None, ts: datetime
) -> WhatsAppSession | None:
    """Apply a ``qr`` event: keep only the latest QR (they are replaced about every 20 s)."""
    session = WhatsAppSession.objects.select_for_update().filter(session_id=session_id).first()
    if session is None or _is_stale(session, ts):
        return session
    session.status = WhatsAppSession.Status.QR
    session.qr = qr
    session.qr_attempt = attempt
    session.qr_at = ts
    session.status_at = ts
    session.gateway_id = gateway_id or session.gateway_id
    session.save(
        update_fields=[
            "status",
            "qr",
            "qr_attempt",
            "qr_at",
            "status_at",
            "gateway_id",
            "updated_at",
        ]
    )
    return session


# --- Outbound delivery ------------------------------------------------------------------------


def message_deliver(*, message_id: int) -> str | None:
    """Publish a stored outbound message to its WhatsApp number's gateway stream.

    Returns the command's event_id, or None when there is nothing to send: the conversation is
    not on WhatsApp (the simulator shows replies in place), or the message is no longer
    sendable (already acknowledged, cancelled by a handoff, contact opted out). The event id is
    stored on the message before publishing and is the same on every retry, so a repeated
    publish is recognised by the gateway's send dedupe and never sent twice.
    """
    message = Message.objects.select_related("conversation__contact").filter(pk=message_id).first()
    if message is None or message.conversation.channel != Conversation.Channel.WHATSAPP:
        return None
    if not conversations.message_is_sendable(message_id=message_id):
        return None
    conversation = message.conversation
    session = WhatsAppSession.objects.filter(session_id=conversation.channel_ref).first()
    if session is None:
        conversations.message_mark_failed(
            message_id=message_id, error="the WhatsApp number of this conversation was removed"
        )
        return None
    event_id = str(conversations.message_command_assign(message_id=message_id))
    # A bot reply is worthless late (an answer to an old question after an outage); what staff
    # typed is sent whenever the number is back.
    expires_at = None
    if message.sender == Message.Sender.BOT and settings.EVA_OUTBOUND_REPLY_TTL_S:
        expires_at = timezone.now() + timedelta(seconds=settings.EVA_OUTBOUND_REPLY_TTL_S)
    session_id, tenant_schema = session.session_id, _tenant_schema()
    chat_id = conversation.contact.wa_id
    if message.media:
        return publisher.send_media(
            session_id=session_id,
            tenant_schema=tenant_schema,
            chat_id=chat_id,
            media={
                "key": message.media["ref"],
                "mime": message.media["mime"],
                "size": message.media["size"],
                "sha256": message.media["sha256"],
                "filename": message.media.get("filename"),
            },
            caption=message.text or None,
            # A voice note must be Ogg/Opus; other audio goes as an audio file.
            as_voice=(
                message.kind == Message.Kind.AUDIO
                and str(message.media["mime"]).startswith("audio/ogg")
            )
            or None,
            as_document=message.kind == Message.Kind.DOCUMENT or None,
            expires_at=expires_at,
            event_id=event_id,
        )
    return publisher.send_text(
        session_id=session_id,
        tenant_schema=tenant_schema,
        chat_id=chat_id,
        text=message.text,
        expires_at=expires_at,
        event_id=event_id,
    )
