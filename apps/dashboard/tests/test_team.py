"""The team page: owners and admins add members with a one-time temporary password, change
roles, deactivate and reactivate them; the business keeps an owner; members change their own
password; another tenant's members are out of reach."""

from __future__ import annotations

import re

import pytest
from django.test import Client
from django_tenants.utils import tenant_context

from apps.accounts.models import User
from apps.accounts.services import api_token_create
from apps.conversations.tests.test_inbox import logged_in

pytestmark = pytest.mark.django_db


def log_in(host: str, email: str, password: str) -> Client | None:
    client = Client(HTTP_HOST=host)
    response = client.post("/login/", {"username": email, "password": password})
    return client if response.status_code == 302 else None


def added(client: Client, email: str, role: str) -> str:
    """Add a member from the team page; the temporary password it shows once."""
    response = client.post(
        "/settings/team/", {"email": email, "full_name": "", "role": role}, follow=True
    )
    page = response.content.decode()
    password = re.search(r'<code class="secret">([^<]+)</code>', page)
    assert password, page
    assert "<code" not in client.get("/settings/team/").content.decode()  # shown once
    return password[1]


def test_an_owner_adds_a_salesperson_who_logs_in_and_changes_the_password(world):
    owner = logged_in(world.owner_a)
    form = owner.get("/settings/team/").content.decode()
    assert '<option value="staff" selected>' in form  # the safe default
    temporary = added(owner, "vendedora@alpha.test", "staff")
    member = log_in(world.owner_a.host, "vendedora@alpha.test", temporary)
    assert member is not None
    assert member.get("/inbox/").status_code == 200
    assert member.get("/settings/team/").status_code == 403  # staff manage nobody

    changed = member.post(
        "/settings/password/",
        {
            "old_password": temporary,
            "new_password1": "Sillas-y-mesas-2026",
            "new_password2": "Sillas-y-mesas-2026",
        },
    )
    assert changed.status_code == 302
    assert log_in(world.owner_a.host, "vendedora@alpha.test", temporary) is None
    assert log_in(world.owner_a.host, "vendedora@alpha.test", "Sillas-y-mesas-2026") is not None
    weak = member.post(
        "/settings/password/",
        {"old_password": "Sillas-y-mesas-2026", "new_password1": "123", "new_password2": "123"},
        HTTP_ACCEPT_LANGUAGE="es",
    )
    assert weak.status_code == 200 and "demasiado corta" in weak.content.decode()

    # Another tenant: the member does not exist there.
    assert log_in(world.owner_b.host, "vendedora@alpha.test", "Sillas-y-mesas-2026") is None
    with tenant_context(world.tenant_b):
        assert not User.objects.filter(email="vendedora@alpha.test").exists()


def test_a_deactivated_member_loses_sessions_and_tokens_and_can_come_back(world):
    owner = logged_in(world.owner_a)
    temporary = added(owner, "temporal@alpha.test", "staff")
    member = log_in(world.owner_a.host, "temporal@alpha.test", temporary)
    with tenant_context(world.tenant_a):
        user = User.objects.get(email="temporal@alpha.test")
        _token, key = api_token_create(created_by=user, name="crm")
    api = Client(HTTP_HOST=world.owner_a.host, HTTP_AUTHORIZATION=f"Bearer {key}")
    assert api.get("/api/v1/me/").status_code == 200

    garbled = owner.post(f"/settings/team/{user.pk}/", {"active": "yes"}, follow=True)
    assert "Unknown change." in garbled.content.decode()
    assert member.get("/inbox/").status_code == 200  # nothing changed
    owner.post(f"/settings/team/{user.pk}/", {"active": "0"})
    assert member.get("/inbox/").status_code == 302  # the open session ends
    assert log_in(world.owner_a.host, "temporal@alpha.test", temporary) is None
    assert api.get("/api/v1/me/").status_code == 401
    assert 'data-member="temporal@alpha.test"' in owner.get("/settings/team/").content.decode()

    owner.post(f"/settings/team/{user.pk}/", {"active": "1"})
    page = owner.post(f"/settings/team/{user.pk}/", {"password": "1"}, follow=True)
    fresh = re.search(r'<code class="secret">([^<]+)</code>', page.content.decode())[1]
    assert log_in(world.owner_a.host, "temporal@alpha.test", temporary) is None
    assert log_in(world.owner_a.host, "temporal@alpha.test", fresh) is not None


def test_admins_manage_sales_staff_only_and_the_business_keeps_an_owner(world):
    owner = logged_in(world.owner_a)
    admin_password = added(owner, "jefa@alpha.test", "admin")
    admin = log_in(world.owner_a.host, "jefa@alpha.test", admin_password)
    with tenant_context(world.tenant_a):
        owner_user = User.objects.get(email=world.owner_a.email)
        staff_user = User.objects.get(email=world.staff_a.email)

    # An admin may not add an admin, nor touch the owner; may promote nobody.
    refused = admin.post(
        "/settings/team/", {"email": "otra@alpha.test", "full_name": "", "role": "admin"}
    )
    assert "Select a valid choice" in refused.content.decode()
    page = admin.post(
        f"/settings/team/{owner_user.pk}/", {"active": "0"}, follow=True, HTTP_ACCEPT_LANGUAGE="es"
    ).content.decode()
    assert "Solo los propietarios cambian a propietarios y administradores." in page
    admin.post(f"/settings/team/{staff_user.pk}/", {"role": "owner"})
    with tenant_context(world.tenant_a):
        assert User.objects.get(pk=owner_user.pk).is_active
        assert User.objects.get(pk=staff_user.pk).role == "staff"

    # The only owner cannot be demoted or deactivated, not even by themselves.
    own = owner.post(f"/settings/team/{owner_user.pk}/", {"role": "staff"}, follow=True)
    assert "You cannot change your own role or access here." in own.content.decode()
    with tenant_context(world.tenant_a):
        second = User.objects.get(email="jefa@alpha.test")
    owner.post(f"/settings/team/{second.pk}/", {"role": "owner"})
    demoted = admin.post(f"/settings/team/{owner_user.pk}/", {"role": "staff"}, follow=True)
    with tenant_context(world.tenant_a):
        assert User.objects.get(pk=owner_user.pk).role == "staff"  # another owner remains
    last = admin.post(f"/settings/team/{second.pk}/", {"active": "0"}, follow=True)
    assert "You cannot change your own role or access here." in last.content.decode()
    assert demoted.status_code == 200

    # Tenant B's owner reaches no member of A (ids are per tenant: A's stays untouched).
    logged_in(world.owner_b).post(f"/settings/team/{staff_user.pk}/", {"active": "0"})
    with tenant_context(world.tenant_a):
        assert User.objects.get(pk=staff_user.pk).is_active


def test_the_last_owner_cannot_be_removed_by_another_owner_either(world):
    from apps.accounts.services import member_update

    with tenant_context(world.tenant_a):
        owner_user = User.objects.get(email=world.owner_a.email)
        helper = User.objects.create(email="ayudante@alpha.test", role="owner")
        User.objects.filter(pk=owner_user.pk).update(is_active=False)
        with pytest.raises(Exception, match="at least one active owner"):
            member_update(by=owner_user, user_id=helper.pk, is_active=False)
        assert User.objects.get(pk=helper.pk).is_active
