"""Guessing passwords: after ten wrong ones for one email from one address, that pair is refused
for fifteen minutes (even with the right password); other emails, other addresses and other
workspaces are not affected."""

from __future__ import annotations

import pytest
from django.core.cache import cache
from django.test import Client
from django_tenants.utils import tenant_context

from apps.dashboard.forms import LOGIN_FAILURES_ALLOWED

pytestmark = pytest.mark.django_db

ATTACKER = "198.18.0.66"


@pytest.fixture(autouse=True)
def _no_earlier_failures(world):
    keys = [
        f"login-failures:{address}:{email}"
        for address in (ATTACKER, "127.0.0.1")
        for email in (world.owner_a.email, world.staff_a.email, world.owner_b.email)
    ]
    for tenant in (world.tenant_a, world.tenant_b):
        with tenant_context(tenant):
            cache.delete_many(keys)


def attempt(persona, password: str, address: str = ATTACKER, **headers) -> Client | str:
    """The logged-in client, or the page's error text."""
    client = Client(HTTP_HOST=persona.host, REMOTE_ADDR=address)
    response = client.post("/login/", {"username": persona.email, "password": password}, **headers)
    return client if response.status_code == 302 else response.content.decode()


def test_ten_wrong_passwords_lock_that_email_from_that_address(world):
    for _ in range(LOGIN_FAILURES_ALLOWED):
        assert "Please enter a correct" in attempt(world.owner_a, "not-the-password")
    locked = attempt(world.owner_a, world.owner_a.password, HTTP_ACCEPT_LANGUAGE="es")
    assert isinstance(locked, str)
    assert "Demasiados intentos fallidos. Inténtelo de nuevo en 15 minutos." in locked

    # Not locked: the same person from their own address, another email, another workspace.
    assert isinstance(attempt(world.owner_a, world.owner_a.password, "127.0.0.1"), Client)
    assert isinstance(attempt(world.staff_a, world.staff_a.password), Client)
    assert isinstance(attempt(world.owner_b, world.owner_b.password), Client)


def test_logging_in_still_works_when_the_cache_is_unreachable(world, unreachable_cache):
    assert "Please enter a correct" in attempt(world.staff_a, "not-the-password")
    assert isinstance(attempt(world.staff_a, world.staff_a.password), Client)
