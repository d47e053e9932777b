from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass

from django.contrib.auth.password_validation import validate_password
from django.core.exceptions import ValidationError
from django.core.validators import validate_email
from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext as _
from django_tenants.utils import schema_context

from apps.accounts.models import ApiToken, User
from apps.tenants.models import Tenant
from apps.tenants.services import TenantError, tenant_create, tenant_normalize

TOKEN_PREFIX = "eva_"  # noqa: S105 - a public marker, not a secret


def user_create(
    *, email: str, password: str | None, role: str = User.Role.STAFF, full_name: str = ""
) -> User:
    """Create a user in the current schema. ``password=None`` makes an unusable password."""
    email = User.objects.normalize_email(email.strip()).lower()
    validate_email(email)
    if User.objects.filter(email=email).exists():
        raise ValidationError(_("A user with email %(email)s already exists.") % {"email": email})
    if role not in User.Role.values:
        raise ValidationError(f"Unknown role {role!r}; use one of {', '.join(User.Role.values)}.")
    user = User(email=email, role=role, full_name=full_name)
    if password is not None:
        validate_password(password, user)
    user.set_password(password)
    user.save()
    return user


@dataclass(frozen=True)
class TenantOnboarding:
    tenant: Tenant
    domain: str
    owner: User
    created: bool


def tenant_onboard(
    *, slug: str, name: str, owner_email: str, owner_password: str | None, domain: str | None = None
) -> TenantOnboarding:
    """Create a tenant with its schema, primary domain and first owner, all or nothing.

    Idempotent: the same slug, name, domain and owner email again return the existing tenant
    with ``created=False``; any other clash raises ``TenantError`` and changes nothing.
    """
    slug, domain = tenant_normalize(slug=slug, domain=domain)
    owner_email = User.objects.normalize_email(owner_email.strip()).lower()
    try:
        validate_email(owner_email)
    except ValidationError as exc:
        raise TenantError(f"Invalid owner email {owner_email!r}.") from exc

    existing = Tenant.objects.filter(slug=slug).first()
    if existing is not None:
        with schema_context(existing.schema_name):
            owner = User.objects.filter(role=User.Role.OWNER).order_by("id").first()
        same = (
            existing.name == name.strip()
            and owner is not None
            and owner.email == owner_email
            and existing.domains.filter(domain=domain).exists()
        )
        if same:
            assert owner is not None
            return TenantOnboarding(tenant=existing, domain=domain, owner=owner, created=False)

    with transaction.atomic():
        tenant = tenant_create(slug=slug, name=name, domain=domain)
        with schema_context(tenant.schema_name):
            try:
                owner = user_create(
                    email=owner_email, password=owner_password, role=User.Role.OWNER
                )
            except ValidationError as exc:
                raise TenantError("Owner not created: " + " ".join(exc.messages)) from exc
    return TenantOnboarding(tenant=tenant, domain=domain, owner=owner, created=True)


def _hash(raw_key: str) -> str:
    return hashlib.sha256(raw_key.encode()).hexdigest()


def api_token_create(*, created_by: User, name: str) -> tuple[ApiToken, str]:
    """Create a token in the current tenant; return it with the raw key, which is never stored."""
    name = name.strip()
    if not name:
        raise ValidationError(_("Give the token a name, e.g. the integration that will use it."))
    prefix = secrets.token_hex(4)
    raw_key = f"{TOKEN_PREFIX}{prefix}_{secrets.token_urlsafe(32)}"
    token = ApiToken.objects.create(
        name=name[:80], prefix=prefix, key_hash=_hash(raw_key), created_by=created_by
    )
    return token, raw_key


def api_token_revoke(*, token: ApiToken) -> ApiToken:
    if token.revoked_at is None:
        token.revoked_at = timezone.now()
        token.save(update_fields=["revoked_at"])
    return token


def api_token_authenticate(*, raw_key: str) -> ApiToken | None:
    """Return the active token of the current tenant matching ``raw_key``, and mark it used."""
    if not raw_key.startswith(TOKEN_PREFIX):
        return None
    token = (
        ApiToken.objects.select_related("created_by")
        .filter(key_hash=_hash(raw_key), revoked_at__isnull=True, created_by__is_active=True)
        .first()
    )
    if token is not None:
        now = timezone.now()
        # Throttle the write: one update a minute per token is plenty for "last used".
        if token.last_used_at is None or (now - token.last_used_at).total_seconds() > 60:
            token.last_used_at = now
            token.save(update_fields=["last_used_at"])
    return token
