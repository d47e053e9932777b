"""Outbound commands and session control, published on the gateway's streams.

Every document is built here, validated against the contract, and XADDed with its one ``event``
field. Callers that store a row for the command (a message, a session status) do it first and
publish on commit (see services), so the gateway never acts on something the database lost.
"""

from __future__ import annotations

import json
from datetime import datetime
from functools import lru_cache
from typing import Any

import redis
from django.conf import settings

from apps.channels import contract

# Control is low-volume and each gateway instance reads its own group continuously, so the
# approximate cap never drops an unread command in practice (docs/streams.md, "Control").
CONTROL_MAXLEN = 10000


@lru_cache(maxsize=1)
def redis_client() -> redis.Redis:
    """One connection pool per process; text in, text out."""
    return redis.Redis.from_url(str(settings.REDIS_URL), decode_responses=True)


def _xadd(stream: str, document: dict[str, Any], *, direction: str, **options: Any) -> str:
    contract.validate(document, direction=direction)
    payload = json.dumps(document, ensure_ascii=False, separators=(",", ":"))
    entry_id = redis_client().xadd(stream, {contract.ENTRY_FIELD: payload}, **options)
    return str(entry_id)


def _outbound(
    kind: str,
    *,
    session_id: str,
    tenant_schema: str,
    event_id: str | None,
    fields: dict[str, Any],
) -> str:
    document = contract.envelope(
        kind=kind, session_id=session_id, tenant_schema=tenant_schema, event_id=event_id
    )
    # Optional command fields are omitted rather than sent as null (the schemas allow absence).
    document.update({key: value for key, value in fields.items() if value is not None})
    _xadd(contract.outbound_stream(session_id), document, direction="outbound")
    return str(document["event_id"])


def _expiry(expires_at: datetime | None) -> str | None:
    return contract.iso_z(expires_at) if expires_at is not None else None


def send_text(
    *,
    session_id: str,
    tenant_schema: str,
    chat_id: str,
    text: str,
    quoted_wa_id: str | None = None,
    expires_at: datetime | None = None,
    event_id: str | None = None,
) -> str:
    """Queue a text for the gateway; returns the command's event_id."""
    return _outbound(
        "send_text",
        session_id=session_id,
        tenant_schema=tenant_schema,
        event_id=event_id,
        fields={
            "chat_id": chat_id,
            "text": text,
            "quoted_wa_id": quoted_wa_id,
            "expires_at": _expiry(expires_at),
        },
    )


def send_media(
    *,
    session_id: str,
    tenant_schema: str,
    chat_id: str,
    media: dict[str, Any],
    caption: str | None = None,
    as_voice: bool | None = None,
    as_document: bool | None = None,
    quoted_wa_id: str | None = None,
    expires_at: datetime | None = None,
    event_id: str | None = None,
) -> str:
    """Queue a stored file (``media`` = {key, mime, size, sha256, filename}, key relative to
    MEDIA_ROOT, written before this call); returns the command's event_id."""
    return _outbound(
        "send_media",
        session_id=session_id,
        tenant_schema=tenant_schema,
        event_id=event_id,
        fields={
            "chat_id": chat_id,
            "media": media,
            "caption": caption,
            "as_voice": as_voice,
            "as_document": as_document,
            "quoted_wa_id": quoted_wa_id,
            "expires_at": _expiry(expires_at),
        },
    )


def mark_read(*, session_id: str, tenant_schema: str, chat_id: str) -> str:
    return _outbound(
        "mark_read",
        session_id=session_id,
        tenant_schema=tenant_schema,
        event_id=None,
        fields={"chat_id": chat_id},
    )


def typing(
    *,
    session_id: str,
    tenant_schema: str,
    chat_id: str,
    state: str = "typing",
    expires_at: datetime | None = None,
) -> str:
    return _outbound(
        "typing",
        session_id=session_id,
        tenant_schema=tenant_schema,
        event_id=None,
        fields={"chat_id": chat_id, "state": state, "expires_at": _expiry(expires_at)},
    )


def control(
    kind: str, *, session_id: str, tenant_schema: str, gateway_id: str | None = None
) -> str:
    """``start``, ``stop`` or ``logout`` a session on the gateway(s); returns the event_id."""
    document = contract.envelope(kind=kind, session_id=session_id, tenant_schema=tenant_schema)
    if gateway_id:
        document["gateway_id"] = gateway_id
    _xadd(
        contract.control_stream(),
        document,
        direction="control",
        maxlen=CONTROL_MAXLEN,
        approximate=True,
    )
    return str(document["event_id"])
