"""Two tenants, two schemas: logins, sessions, tokens, cache entries and files never cross."""

from __future__ import annotations

import pytest
from django.conf import settings
from django.core.cache import cache
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.db import connection
from django.test import Client
from django_tenants.utils import schema_context, tenant_context

from apps.accounts.models import User
from apps.accounts.services import api_token_create

pytestmark = pytest.mark.django_db


def test_each_tenant_has_its_own_schema_with_its_own_users(world):
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT table_schema FROM information_schema.tables "
            "WHERE table_name = 'accounts_user' ORDER BY table_schema"
        )
        schemas = [row[0] for row in cursor.fetchall()]
    assert {"alpha", "beta", "public"} <= set(schemas)
    with schema_context("alpha"):
        alpha_users = set(User.objects.values_list("email", flat=True))
    with schema_context("beta"):
        beta_users = set(User.objects.values_list("email", flat=True))
    assert alpha_users == {"owner@alpha.test", "staff@alpha.test"}
    assert beta_users == {"owner@beta.test"}


def _login(client: Client, host: str, email: str, password: str):
    return client.post(
        "/login/", {"username": email, "password": password}, HTTP_HOST=host, follow=False
    )


def test_a_user_of_tenant_a_cannot_log_in_on_tenant_b(world):
    a = world.owner_a
    response = _login(Client(), world.owner_b.host, a.email, a.password)
    assert response.status_code == 200  # the form again, with an error
    assert "sessionid" not in response.cookies
    assert b"Please enter a correct" in response.content

    ok = _login(Client(), a.host, a.email, a.password)
    assert ok.status_code == 302 and ok["Location"] == "/"


def test_a_session_of_tenant_a_is_not_valid_on_tenant_b(world):
    client = Client()
    _login(client, world.owner_a.host, world.owner_a.email, world.owner_a.password)
    assert client.get("/", HTTP_HOST=world.owner_a.host).status_code == 200
    on_b = client.get("/", HTTP_HOST=world.owner_b.host)
    assert on_b.status_code == 302 and on_b["Location"].startswith("/login/")


def test_session_cookie_is_host_only(world):
    response = _login(Client(), world.owner_a.host, world.owner_a.email, world.owner_a.password)
    assert response.cookies["sessionid"]["domain"] == ""
    assert response.cookies["sessionid"]["httponly"]


def test_a_token_of_tenant_a_gets_401_on_tenant_b(world):
    with tenant_context(world.tenant_a):
        owner = User.objects.get(email=world.owner_a.email)
        _token, key = api_token_create(created_by=owner, name="crm")
    auth = {"HTTP_AUTHORIZATION": f"Bearer {key}"}
    on_a = Client().get("/api/v1/me/", HTTP_HOST=world.owner_a.host, **auth)
    assert on_a.status_code == 200
    assert on_a.json() == {"email": world.owner_a.email, "role": "owner", "tenant": "alpha"}
    on_b = Client().get("/api/v1/me/", HTTP_HOST=world.owner_b.host, **auth)
    assert on_b.status_code == 401
    assert on_b.json()["error"]["message"] == "Invalid or revoked API token."


def test_a_cached_value_of_tenant_a_is_a_miss_for_tenant_b(world):
    with tenant_context(world.tenant_a):
        cache.set("pricing:summary", "alpha prices", 60)
    try:
        with tenant_context(world.tenant_b):
            assert cache.get("pricing:summary") is None
        with tenant_context(world.tenant_a):
            assert cache.get("pricing:summary") == "alpha prices"
    finally:
        with tenant_context(world.tenant_a):
            cache.delete("pricing:summary")


def test_uploaded_files_land_under_the_tenant_folder(world):
    with tenant_context(world.tenant_a):
        name = default_storage.save("docs/prices.txt", ContentFile(b"alpha price list"))
        path = default_storage.path(name)
    try:
        assert path.startswith(str(settings.MEDIA_ROOT / "alpha") + "/")
        with tenant_context(world.tenant_b):
            assert not default_storage.exists(name)
    finally:
        with tenant_context(world.tenant_a):
            default_storage.delete(name)


def test_unknown_host_is_not_served_as_any_tenant(world):
    response = Client().get("/login/", HTTP_HOST="nobody.localhost")
    assert response.status_code == 404
