"""Tenant lifecycle: schema + domain creation, activation, the public tenant.

Creating a tenant together with its first owner is composed one level up, in
``apps.accounts.services.tenant_onboard`` (accounts may use tenants, not the reverse).
"""

from __future__ import annotations

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone
from django_tenants.utils import get_public_schema_name

from apps.tenants.models import Domain, Tenant
from apps.tenants.validators import schema_name_for, validate_domain, validate_slug


class TenantError(Exception):
    """A tenant operation was refused; the message is meant for the operator."""


def public_tenant_ensure() -> Tenant:
    """Make sure the public schema has its tenant row and the base domain routes to it."""
    public = get_public_schema_name()
    tenant, _ = Tenant.objects.get_or_create(
        schema_name=public, defaults={"slug": "public", "name": "EVA platform"}
    )
    Domain.objects.update_or_create(
        domain=settings.EVA_BASE_DOMAIN, defaults={"tenant": tenant, "is_primary": True}
    )
    return tenant


def tenant_normalize(*, slug: str, domain: str | None) -> tuple[str, str]:
    """Return the cleaned ``(slug, domain)`` or raise ``TenantError`` explaining what is wrong."""
    slug = slug.strip().lower()
    domain = (domain or f"{slug}.{settings.EVA_BASE_DOMAIN}").strip().lower()
    try:
        validate_slug(slug)
        validate_domain(domain)
    except ValidationError as exc:
        raise TenantError(exc.messages[0]) from exc
    return slug, domain


@transaction.atomic
def tenant_create(*, slug: str, name: str, domain: str) -> Tenant:
    """Create the tenant row, its migrated schema and its primary domain.

    Before: ``slug`` and ``domain`` went through ``tenant_normalize``. After: the schema exists
    with every tenant migration applied. Raises ``TenantError`` if the slug, schema or domain is
    taken; nothing is changed then.
    """
    if not name.strip():
        raise TenantError("The tenant name must not be empty.")
    public_tenant_ensure()
    holder = Tenant.objects.filter(slug=slug).first()
    if holder is not None:
        raise TenantError(
            f"The slug {slug!r} is already taken by tenant {holder.name!r}; choose another slug."
        )
    taken = Domain.objects.filter(domain=domain).select_related("tenant").first()
    if taken is not None:
        raise TenantError(f"The domain {domain!r} already belongs to tenant {taken.tenant.slug!r}.")
    if Tenant.objects.filter(schema_name=schema_name_for(slug)).exists():
        raise TenantError(f"The schema for slug {slug!r} already exists.")
    # Saving creates and migrates the schema inside the caller's transaction, so a failure
    # later in the same transaction rolls the schema back too.
    tenant = Tenant(schema_name=schema_name_for(slug), slug=slug, name=name.strip())
    tenant.save()
    Domain.objects.create(domain=domain, tenant=tenant, is_primary=True)
    return tenant


def tenant_set_active(*, tenant: Tenant, active: bool) -> Tenant:
    """Deactivate (dashboard, API and bot replies stop; data kept) or reactivate a tenant."""
    if tenant.schema_name == get_public_schema_name():
        raise TenantError("The public tenant cannot be deactivated.")
    tenant.is_active = active
    tenant.deactivated_at = None if active else timezone.now()
    tenant.save(update_fields=["is_active", "deactivated_at"])
    return tenant
