from __future__ import annotations

from django.db import models
from django.utils.translation import gettext_lazy as _
from django_tenants.models import DomainMixin, TenantMixin


class Tenant(TenantMixin):
    """A business using EVA. Its rows live in the PostgreSQL schema ``schema_name``."""

    slug = models.SlugField(_("slug"), max_length=40, unique=True)
    name = models.CharField(_("name"), max_length=120)
    is_active = models.BooleanField(_("active"), default=True)
    created_at = models.DateTimeField(_("created at"), auto_now_add=True)
    deactivated_at = models.DateTimeField(_("deactivated at"), null=True, blank=True)

    auto_create_schema = True
    auto_drop_schema = False

    class Meta:
        ordering = ["slug"]

    def __str__(self) -> str:
        return f"{self.name} ({self.slug})"


class Domain(DomainMixin):
    """A host name routed to a tenant, e.g. ``acme.eva.example.com``."""

    def __str__(self) -> str:
        return self.domain


class WhatsAppSessionIndex(models.Model):
    """Public-schema index: which tenant owns a WhatsApp session (and its number).

    The inbound consumer reads one shared stream for every tenant; it must find the tenant of an
    event before it can open the tenant's schema, so the mapping lives here, in the public schema.
    Rows are written by ``apps.channels.services`` when a tenant creates a session.
    """

    session_id = models.CharField(_("session id"), max_length=64, unique=True)
    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="whatsapp_sessions")
    # The connected number, once WhatsApp reported it. Unique: a number is paired to one session
    # at a time (pairing it elsewhere moves it; see channels.services).
    phone = models.CharField(_("phone"), max_length=20, null=True, blank=True, unique=True)
    created_at = models.DateTimeField(_("created at"), auto_now_add=True)

    class Meta:
        ordering = ["session_id"]
        verbose_name = _("WhatsApp session index entry")
        verbose_name_plural = _("WhatsApp session index")

    def __str__(self) -> str:
        return f"{self.session_id} → {self.tenant_id}"
