from __future__ import annotations

from django.db.models import QuerySet

from apps.accounts.models import User
from apps.channels.models import WhatsAppSession
from apps.tenants.models import Tenant, WhatsAppSessionIndex


def whatsapp_session_list() -> QuerySet[WhatsAppSession]:
    """The current tenant's WhatsApp numbers (the connection's schema decides the tenant)."""
    return WhatsAppSession.objects.order_by("created_at", "id")


def whatsapp_session_get(*, session_id: str) -> WhatsAppSession | None:
    return whatsapp_session_list().filter(session_id=session_id).first()


def whatsapp_session_get_for_user(*, user: User, pk: int) -> WhatsAppSession | None:
    """Every member of the tenant sees its numbers; only owners and admins change them
    (views check ``user.can_manage`` before acting)."""
    if not user.is_authenticated:
        return None
    return whatsapp_session_list().filter(pk=pk).first()


def session_tenant_resolve(*, session_id: str) -> Tenant | None:
    """Public-schema index: the tenant that owns a session, or None (unknown or inactive)."""
    entry = (
        WhatsAppSessionIndex.objects.select_related("tenant").filter(session_id=session_id).first()
    )
    return entry.tenant if entry is not None else None


def phone_tenant_resolve(*, phone: str) -> Tenant | None:
    """Public-schema index: the tenant whose session is paired to ``phone`` (digits only)."""
    entry = WhatsAppSessionIndex.objects.select_related("tenant").filter(phone=phone).first()
    return entry.tenant if entry is not None else None
