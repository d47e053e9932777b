from __future__ import annotations

from django.db.models import QuerySet
from django_tenants.utils import get_public_schema_name

from apps.tenants.models import Domain, Tenant


def tenant_list() -> QuerySet[Tenant]:
    return (
        Tenant.objects.exclude(schema_name=get_public_schema_name())
        .prefetch_related("domains")
        .order_by("slug")
    )


def tenant_get_by_slug(*, slug: str) -> Tenant | None:
    return tenant_list().filter(slug=slug).first()


def tenant_primary_domain(*, tenant: Tenant) -> str | None:
    domain = Domain.objects.filter(tenant=tenant, is_primary=True).first()
    return domain.domain if domain else None
