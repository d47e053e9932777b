"""Budgets downgrade the route and say so; tenants' keys are encrypted and tenant-scoped."""

from __future__ import annotations

from decimal import Decimal

import pytest
from django_tenants.utils import tenant_context

from apps.ai.chat import ChatMessage, ChatRequest, ContextPassage, chat_complete
from apps.ai.crypto import KeyUnreadable, decrypt, encrypt
from apps.ai.models import UsageRecord
from apps.ai.selectors import month_spend_usd, provider_key_plaintext, provider_keys_list
from apps.ai.services import budget_set, provider_key_delete, provider_key_set

pytestmark = pytest.mark.django_db


def _ask() -> object:
    return chat_complete(
        ChatRequest(
            system="Sales assistant.",
            messages=[ChatMessage(role="user", text="¿Cuánto tarda el envío?")],
            context=[ContextPassage(ref="c1", text="El envío tarda 2 días.")],
        )
    )


def test_over_budget_routes_to_the_local_responder_and_says_so(world, vendors, settings):
    openai_stub, _ = vendors
    # An expensive price table: one stub call (120 in, 30 out) costs 15 USD.
    settings.AI_PRICES_PER_MTOK = {"gpt-4o-mini": (100_000.0, 100_000.0)}
    with tenant_context(world.tenant_a):
        budget_set(monthly_limit_usd=Decimal("10.00"))
        first = _ask()  # under budget: OpenAI answers and spends
        assert first.provider == "openai" and month_spend_usd() == Decimal("15")
        second = _ask()
        record = UsageRecord.objects.get(pk=second.usage_id)
    assert second.provider == "local"
    assert "monthly budget" in record.budget_note and "local responder" in record.budget_note
    assert len(openai_stub.seen) == 1
    with tenant_context(world.tenant_b):  # beta has no budget
        assert _ask().provider == "openai"


def test_over_budget_can_route_to_the_cheapest_model(world, vendors, settings) -> None:
    _, gemini_stub = vendors
    settings.AI_OVER_BUDGET_ROUTE = "cheapest"
    settings.AI_CHAT_ROUTE = "openai:gpt-4o,gemini:gemini-2.5-flash-lite"
    with tenant_context(world.tenant_a):
        budget_set(monthly_limit_usd=Decimal("0"))
        result = _ask()
        record = UsageRecord.objects.get(pk=result.usage_id)
    assert (result.provider, result.model) == ("gemini", "gemini-2.5-flash-lite")
    assert "cheapest model" in record.budget_note
    assert len(gemini_stub.seen) == 1


def test_keys_are_encrypted_listed_without_plaintext_and_deletable(world) -> None:
    with tenant_context(world.tenant_a):
        provider_key_set(provider="gemini", api_key="  AIza-alpha-secret  ")
        listed = provider_keys_list()
        assert [k.provider for k in listed] == ["gemini"]
        assert "AIza-alpha-secret" not in repr(listed)
        assert provider_key_plaintext(provider="gemini") == ("AIza-alpha-secret", "")
    with tenant_context(world.tenant_b):
        assert provider_keys_list() == []
        assert provider_key_plaintext(provider="gemini") is None
    with tenant_context(world.tenant_a):
        assert provider_key_delete(provider="gemini")
        assert provider_key_plaintext(provider="gemini") is None


def test_a_changed_encryption_key_makes_stored_keys_unreadable(settings) -> None:
    token = encrypt("sk-secret")
    assert decrypt(token) == "sk-secret"
    settings.AI_KEYS_ENCRYPTION_KEY = "a-different-key-material"
    with pytest.raises(KeyUnreadable):
        decrypt(token)
