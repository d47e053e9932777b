from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass

from django.contrib.auth.password_validation import validate_password
from django.core.exceptions import PermissionDenied, ValidationError
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


# --- the tenant's team: owners, admins and sales staff -------------------------------------------


def _may_manage(actor: User, role: str) -> bool:
    """Owners manage everyone; admins manage sales staff only; staff manage nobody."""
    if actor.role == User.Role.OWNER:
        return True
    return actor.role == User.Role.ADMIN and role == User.Role.STAFF


def _temporary_password() -> str:
    return secrets.token_urlsafe(12)


def member_add(*, by: User, email: str, role: str, full_name: str = "") -> tuple[User, str]:
    """Add a member to the current tenant with a temporary password, returned once (EVA sends
    no email: whoever added them hands it over; they change it after logging in)."""
    if not _may_manage(by, role):
        raise PermissionDenied(_("Only owners add owners and admins."))
    password = _temporary_password()
    return user_create(email=email, password=password, role=role, full_name=full_name), password


def _member_for_change(*, by: User, user_id: int) -> User:
    member = User.objects.select_for_update().filter(pk=user_id).first()
    if member is None:
        raise User.DoesNotExist
    if member.pk == by.pk:
        raise ValidationError(_("You cannot change your own role or access here."))
    if not _may_manage(by, member.role):
        raise PermissionDenied(_("Only owners change owners and admins."))
    return member


@transaction.atomic
def member_update(
    *, by: User, user_id: int, role: str | None = None, is_active: bool | None = None
) -> User:
    """Change a member's role or access (deactivated: no login, no session, no API token)."""
    member = _member_for_change(by=by, user_id=user_id)
    if role is not None:
        if role not in User.Role.values:
            raise ValidationError(_("Unknown role."))
        if not _may_manage(by, role):
            raise PermissionDenied(_("Only owners make someone an owner or an admin."))
    leaves_owners = member.role == User.Role.OWNER and (
        (role is not None and role != User.Role.OWNER) or is_active is False
    )
    if leaves_owners:
        others = User.objects.select_for_update().filter(role=User.Role.OWNER, is_active=True)
        if not others.exclude(pk=member.pk).exists():
            raise ValidationError(_("The business must keep at least one active owner."))
    fields = []
    if role is not None and role != member.role:
        member.role = role
        fields.append("role")
    if is_active is not None and is_active != member.is_active:
        member.is_active = is_active
        fields.append("is_active")
    if fields:
        member.save(update_fields=fields)
    return member


@transaction.atomic
def member_password_reset(*, by: User, user_id: int) -> tuple[User, str]:
    """Give a member who forgot their password a new temporary one (returned once)."""
    member = _member_for_change(by=by, user_id=user_id)
    password = _temporary_password()
    member.set_password(password)
    member.save(update_fields=["password"])
    return member, password
