"""Self-service sign-up on the public host: a business creates its workspace and owner, lands on
its own login page, and finds nothing of anyone else's; taken, reserved or malformed addresses
and weak passwords are refused without creating anything; it can be closed and is rate-limited."""

from __future__ import annotations

import pytest
from django.core.cache import cache
from django.test import Client, RequestFactory
from django_tenants.utils import schema_context

from apps.accounts.models import User
from apps.tenants.models import Tenant
from apps.tenants.signup import rate_key
from eva.clients import client_address

pytestmark = pytest.mark.django_db

ADDRESSES = ("192.0.2.10", "203.0.113.7", "203.0.113.8")


@pytest.fixture(autouse=True)
def _no_earlier_sign_ups():
    """This hour's counts of the addresses these tests use start at zero (a rerun within the
    hour would find the last run's)."""
    cache.delete_many([rate_key(address) for address in ADDRESSES])


GOOD = {
    "name": "Muebles Sol",
    "slug": "muebles-sol",
    "email": "Duena@MueblesSol.example",
    "password": "Sofas-y-mesas-2026",
}


def public(**headers) -> Client:
    return Client(HTTP_HOST="localhost", **headers)


def test_a_business_signs_up_and_logs_in_to_its_own_empty_workspace(world):
    landing = public().get("/").content.decode()
    assert 'href="/signup/"' in landing
    response = public(REMOTE_ADDR="192.0.2.10").post("/signup/", GOOD)
    assert response.status_code == 302
    assert response["Location"] == (
        "http://muebles-sol.localhost/login/?welcome=1&email=duena%40mueblessol.example"
    )
    tenant = Tenant.objects.get(slug="muebles-sol")
    assert tenant.name == "Muebles Sol"
    with schema_context(tenant.schema_name):
        owner = User.objects.get()
        assert (owner.email, owner.role) == ("duena@mueblessol.example", "owner")

    client = Client(HTTP_HOST="muebles-sol.localhost")
    login = client.get("/login/?welcome=1&email=duena%40mueblessol.example").content.decode()
    assert 'id="welcome"' in login and 'value="duena@mueblessol.example"' in login
    logged = client.post(
        "/login/", {"username": "duena@mueblessol.example", "password": GOOD["password"]}
    )
    assert logged.status_code == 302
    assert "Welcome to Muebles Sol" in client.get("/").content.decode()
    # Nothing of the other tenants: no agents, no leads, no team but its owner.
    assert client.get("/api/v1/agents/").json()["count"] == 0
    assert client.get("/api/v1/contacts/").json()["count"] == 0
    assert client.get("/settings/team/").content.decode().count("data-member=") == 1
    # And the owner's password opens no other workspace.
    other = Client(HTTP_HOST=world.owner_a.host).post(
        "/login/", {"username": "duena@mueblessol.example", "password": GOOD["password"]}
    )
    assert other.status_code == 200


@pytest.mark.parametrize(
    ("slug", "message"),
    [
        ("alpha", "This address is taken; choose another one."),
        ("admin", "This address is taken; choose another one."),
        ("A!", "Use 3 to 40 lowercase letters, digits or hyphens, starting with a letter."),
    ],
)
def test_an_unusable_address_is_refused_without_saying_whose_it_is(world, slug, message):
    page = public().post("/signup/", GOOD | {"slug": slug}).content.decode()
    assert message in page and "Alpha Store" not in page
    assert Tenant.objects.count() == 3  # public, alpha, beta


def test_a_weak_password_is_refused_in_the_readers_language(world):
    page = (
        public()
        .post("/signup/", GOOD | {"password": "12345678"}, HTTP_ACCEPT_LANGUAGE="es")
        .content.decode()
    )
    assert "Esta contraseña es demasiado común." in page
    assert "común. Esta contraseña es completamente numérica." in page  # one reason after another
    similar = public().post("/signup/", GOOD | {"password": "duena@mueblessol"}).content.decode()
    assert "too similar" in similar
    assert not Tenant.objects.filter(slug="muebles-sol").exists()


def test_sign_up_is_rate_limited_per_client_address(world, settings):
    settings.EVA_SIGNUP_PER_HOUR = 1
    assert public(REMOTE_ADDR="203.0.113.7").post("/signup/", GOOD).status_code == 302
    again = public(REMOTE_ADDR="203.0.113.7").post("/signup/", GOOD | {"slug": "muebles-luna"})
    assert "Too many workspaces were created from here." in again.content.decode()
    assert not Tenant.objects.filter(slug="muebles-luna").exists()
    elsewhere = public(REMOTE_ADDR="203.0.113.8").post("/signup/", GOOD | {"slug": "muebles-luna"})
    assert elsewhere.status_code == 302


def test_sign_up_can_be_closed(world, settings):
    settings.EVA_SIGNUP_OPEN = False
    assert 'href="/signup/"' not in public().get("/").content.decode()
    closed = public().post("/signup/", GOOD)
    assert closed.status_code == 404 and "Sign-up is closed" in closed.content.decode()
    assert not Tenant.objects.filter(slug="muebles-sol").exists()


def test_the_client_address_behind_the_proxy_is_the_one_it_appended():
    factory = RequestFactory()
    proxied = factory.get(
        "/", REMOTE_ADDR="172.18.0.5", HTTP_X_FORWARDED_FOR="6.6.6.6, 198.51.100.20"
    )
    assert client_address(proxied) == "198.51.100.20"  # the client cannot forge the last one
    direct = factory.get("/", REMOTE_ADDR="93.184.216.34", HTTP_X_FORWARDED_FOR="6.6.6.6")
    assert client_address(direct) == "93.184.216.34"  # not behind a proxy: the header is ignored


def test_a_returning_user_finds_their_workspace_from_the_public_site(world):
    found = public().get("/?workspace=Alpha")
    assert found.status_code == 302 and found["Location"] == "http://alpha.localhost/login/"
    missing = public().get("/?workspace=nadie", HTTP_ACCEPT_LANGUAGE="es").content.decode()
    assert "Ningún espacio de trabajo tiene esa dirección." in missing
    assert public().get("/?workspace=public").status_code == 200  # the platform's own schema


def test_sign_up_still_works_when_the_cache_is_unreachable(world, unreachable_cache):
    assert public().post("/signup/", GOOD | {"slug": "sin-cache"}).status_code == 302
    assert Tenant.objects.filter(slug="sin-cache").exists()
