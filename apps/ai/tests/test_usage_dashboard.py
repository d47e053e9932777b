"""The /usage/ page: totals per day and model for owners and admins, keys write-only."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest
from django.test import Client
from django.utils import timezone
from django_tenants.utils import tenant_context

from apps.ai.models import ProviderKey, UsageRecord
from apps.ai.selectors import usage_totals_by_day_and_model
from apps.ai.services import UsageEntry, usage_record_create

pytestmark = pytest.mark.django_db


def _client(persona) -> Client:
    client = Client()
    response = client.post(
        "/login/",
        {"username": persona.email, "password": persona.password},
        HTTP_HOST=persona.host,
    )
    assert response.status_code == 302
    return client


def _meter(model: str, tokens_in: int, *, success: bool = True, days_ago: int = 0) -> None:
    record = usage_record_create(
        entry=UsageEntry(
            kind="chat",
            purpose="reply",
            provider="openai",
            model=model,
            tokens_in=tokens_in,
            tokens_out=10,
            success=success,
        )
    )
    assert record is not None
    if days_ago:
        UsageRecord.objects.filter(pk=record.pk).update(
            created_at=timezone.now() - dt.timedelta(days=days_ago)
        )


def test_totals_per_day_and_model(world) -> None:
    with tenant_context(world.tenant_a):
        _meter("gpt-4o-mini", 1_000_000)
        _meter("gpt-4o-mini", 1_000_000, success=False)
        _meter("gpt-4o", 100)
        _meter("gpt-4o-mini", 500, days_ago=1)
        totals = usage_totals_by_day_and_model()
    today = timezone.localdate()
    rows = [(t.day, t.model, t.calls, t.failures, t.tokens_in) for t in totals]
    assert rows == [
        (today, "gpt-4o", 1, 0, 100),
        (today, "gpt-4o-mini", 2, 1, 2_000_000),
        (today - dt.timedelta(days=1), "gpt-4o-mini", 1, 0, 500),
    ]
    # Only the successful million tokens of gpt-4o-mini are billed: 0.15 + 10 * 0.60 / 1e6.
    assert totals[1].cost_usd == Decimal("0.150006")
    with tenant_context(world.tenant_b):
        assert usage_totals_by_day_and_model() == []


def test_owner_sees_the_page_staff_does_not_and_tenant_b_sees_nothing_of_a(world) -> None:
    with tenant_context(world.tenant_a):
        _meter("gpt-4o-mini-alpha-only", 1234)
    owner = _client(world.owner_a)
    page = owner.get("/usage/", HTTP_HOST=world.owner_a.host)
    assert page.status_code == 200
    assert b"gpt-4o-mini-alpha-only" in page.content and b"1234" in page.content
    fragment = owner.get("/usage/?days=7", HTTP_HOST=world.owner_a.host, HTTP_HX_REQUEST="true")
    assert fragment.status_code == 200 and b"<html" not in fragment.content
    assert b"gpt-4o-mini-alpha-only" in fragment.content

    staff = _client(world.staff_a)
    assert staff.get("/usage/", HTTP_HOST=world.staff_a.host).status_code == 403

    other = _client(world.owner_b)
    page_b = other.get("/usage/", HTTP_HOST=world.owner_b.host)
    assert page_b.status_code == 200 and b"gpt-4o-mini-alpha-only" not in page_b.content


def test_a_key_entered_in_the_dashboard_is_stored_encrypted_and_never_shown(world) -> None:
    secret = "sk-entered-in-dashboard-987654321"
    owner = _client(world.owner_a)
    saved = owner.post(
        "/usage/keys/",
        {"provider": "openai", "api_key": secret, "base_url": ""},
        HTTP_HOST=world.owner_a.host,
        follow=True,
    )
    assert saved.status_code == 200
    assert secret.encode() not in saved.content
    assert b"Key set on" in saved.content
    with tenant_context(world.tenant_a):
        stored = ProviderKey.objects.get(provider="openai")
        assert secret not in stored.encrypted_key
    with tenant_context(world.tenant_b):
        assert not ProviderKey.objects.exists()

    staff = _client(world.staff_a)
    refused = staff.post(
        "/usage/keys/",
        {"provider": "gemini", "api_key": "x"},
        HTTP_HOST=world.staff_a.host,
    )
    assert refused.status_code == 403

    removed = owner.post("/usage/keys/openai/delete/", HTTP_HOST=world.owner_a.host)
    assert removed.status_code == 302
    with tenant_context(world.tenant_a):
        assert not ProviderKey.objects.exists()


def test_budget_is_set_from_the_dashboard(world) -> None:
    owner = _client(world.owner_a)
    response = owner.post(
        "/usage/budget/", {"monthly_limit_usd": "25.50"}, HTTP_HOST=world.owner_a.host, follow=True
    )
    assert response.status_code == 200 and b"25.50" in response.content


def test_the_key_status_says_whether_the_platform_has_a_key(world, settings) -> None:
    owner = _client(world.owner_a)
    settings.GOOGLE_API_KEY = None
    settings.OPENAI_API_KEY = None
    settings.OPENAI_BASE_URL = None
    page = owner.get("/usage/", HTTP_HOST=world.owner_a.host).content.decode()
    assert page.count("No key: this provider is not used") == 2
    assert "Platform key" not in page

    settings.GOOGLE_API_KEY = "platform-gemini-key"
    settings.OPENAI_BASE_URL = "http://127.0.0.1:11434/v1"  # a local server needs no key
    page = owner.get("/usage/", HTTP_HOST=world.owner_a.host).content.decode()
    assert page.count("Platform key") == 2 and "No key" not in page
