"""Operators' tenant commands: create (idempotent, clear refusals), list, (de)activate, demo."""

from __future__ import annotations

import io

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.test import Client
from django_tenants.utils import schema_context

from apps.accounts.models import User
from apps.tenants.models import Domain, Tenant

pytestmark = pytest.mark.django_db


def run(*args: str) -> str:
    out = io.StringIO()
    call_command(*args, stdout=out)
    return out.getvalue()


def test_tenant_create_makes_schema_domain_and_owner_and_is_idempotent(world):
    out = run(
        "tenant_create",
        "gamma-shop",
        "--name",
        "Gamma Shop",
        "--owner-email",
        "Boss@Gamma.test",
        "--owner-password",
        "a-long-pass-phrase",
    )
    assert "Created tenant 'gamma-shop' (schema gamma_shop)" in out
    tenant = Tenant.objects.get(slug="gamma-shop")
    assert tenant.domains.get().domain == "gamma-shop.localhost"
    with schema_context("gamma_shop"):
        owner = User.objects.get()
        assert (owner.email, owner.role) == ("boss@gamma.test", "owner")

    again = run(
        "tenant_create",
        "gamma-shop",
        "--name",
        "Gamma Shop",
        "--owner-email",
        "boss@gamma.test",
        "--owner-password",
        "whatever-else-123",
    )
    assert "already exists" in again
    assert Tenant.objects.filter(slug="gamma-shop").count() == 1

    login = Client().post(
        "/login/",
        {"username": "boss@gamma.test", "password": "a-long-pass-phrase"},
        HTTP_HOST="gamma-shop.localhost",
    )
    assert login.status_code == 302


def test_tenant_create_refuses_a_taken_slug_and_keeps_the_existing_tenant(world):
    with pytest.raises(CommandError, match="slug 'alpha' is already taken by tenant 'Alpha Store'"):
        run(
            "tenant_create",
            "alpha",
            "--name",
            "Intruder",
            "--owner-email",
            "x@intruder.test",
            "--owner-password",
            "a-long-pass-phrase",
        )
    alpha = Tenant.objects.get(slug="alpha")
    assert alpha.name == "Alpha Store"
    with schema_context("alpha"):
        assert not User.objects.filter(email="x@intruder.test").exists()
        assert User.objects.filter(email="owner@alpha.test", role="owner").exists()


@pytest.mark.parametrize(
    ("domain", "message"),
    [
        ("https://shop.example.com", "Invalid domain"),
        ("shop..example.com", "Invalid domain"),
        ("shop.example.com:8000", "Invalid domain"),
        ("beta.localhost", "already belongs to tenant 'beta'"),
    ],
)
def test_tenant_create_refuses_a_bad_or_taken_domain(world, domain, message):
    before = Tenant.objects.count()
    with pytest.raises(CommandError, match=message):
        run(
            "tenant_create",
            "delta",
            "--name",
            "Delta",
            "--owner-email",
            "o@delta.test",
            "--owner-password",
            "a-long-pass-phrase",
            "--domain",
            domain,
        )
    assert Tenant.objects.count() == before
    assert Domain.objects.get(domain="beta.localhost").tenant.slug == "beta"


@pytest.mark.parametrize("slug", ["Bad_Slug", "ab", "-lead", "public", "www"])
def test_tenant_create_refuses_an_invalid_slug(world, slug):
    with pytest.raises(CommandError, match="slug"):
        run(
            "tenant_create",
            slug,
            "--name",
            "X",
            "--owner-email",
            "o@x.test",
            "--owner-password",
            "a-long-pass-phrase",
        )


def test_tenant_create_rejects_a_weak_owner_password_without_leaving_a_schema(world):
    with pytest.raises(CommandError, match="Owner not created"):
        run(
            "tenant_create",
            "weakpass",
            "--name",
            "Weak",
            "--owner-email",
            "o@weak.test",
            "--owner-password",
            "123",
        )
    assert not Tenant.objects.filter(slug="weakpass").exists()
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("SELECT 1 FROM information_schema.schemata WHERE schema_name = 'weakpass'")
        assert cursor.fetchone() is None


def test_deactivate_blocks_the_tenant_and_reactivate_restores_it(world):
    assert "is now deactivated" in run("tenant_deactivate", "beta")
    blocked = Client().get("/login/", HTTP_HOST="beta.localhost")
    assert blocked.status_code == 403
    assert b"This workspace is deactivated" in blocked.content
    assert "beta" in run("tenant_list") and " no " in run("tenant_list")
    assert "is now active" in run("tenant_reactivate", "beta")
    assert Client().get("/login/", HTTP_HOST="beta.localhost").status_code == 200


def test_deactivate_an_unknown_slug_is_a_clear_error(world):
    with pytest.raises(CommandError, match="No tenant with slug 'nope'"):
        run("tenant_deactivate", "nope")


def test_seed_demo_prints_url_and_credentials_and_is_repeatable(world):
    first = run("seed_demo")
    assert "http://demo.localhost:8000/" in first
    assert "owner@demo.example.com" in first
    second = run("seed_demo")
    assert "Kept demo tenant" in second
    assert Tenant.objects.filter(slug="demo").count() == 1


def test_help_texts_explain_the_commands(capsys):
    from django.core.management import get_commands, load_command_class

    for name in (
        "tenant_create",
        "tenant_list",
        "tenant_deactivate",
        "tenant_reactivate",
        "seed_demo",
        "health",
    ):
        command = load_command_class(get_commands()[name], name)
        assert len(command.help) > 40, name
