"""A tenant's keys and budget are remembered per process and re-read as soon as they change:
in this process at once, in other processes through the settings version in Redis; never
inside a transaction, never across tenants, and without Redis the tables are simply read.
This month's spend, for the budget check, is remembered too: this process's own spending counts
at once, other processes' within seconds."""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal

import pytest
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext
from django_tenants.utils import schema_context, tenant_context

from apps.ai import config_cache
from apps.ai.models import ProviderKey, TenantBudget, UsageRecord
from apps.ai.selectors import budget_limit_usd, provider_key_plaintext
from apps.ai.services import budget_set, provider_key_delete, provider_key_set


@pytest.fixture
def committed(django_db_setup, django_db_blocker, world) -> Iterator[None]:
    """Database access outside a test transaction, as a worker has (autocommit); the keys and
    budgets written are deleted afterwards."""
    config_cache._memory.clear()
    config_cache._spend.clear()
    with django_db_blocker.unblock():
        yield
        for schema in ("alpha", "beta"):
            with schema_context(schema):
                ProviderKey.objects.all().delete()
                TenantBudget.objects.all().delete()
                UsageRecord.objects.all().delete()
    config_cache._memory.clear()
    config_cache._spend.clear()


@pytest.mark.django_db
def test_inside_a_transaction_the_tables_are_read_every_time(world) -> None:
    # (Also makes pytest-django set up the test database when this module runs alone: the
    # other tests here use the `committed` fixture instead of the django_db mark.)
    config_cache._memory.clear()
    with tenant_context(world.tenant_a):
        provider_key_set(provider="openai", api_key="sk-in-transaction")
        assert provider_key_plaintext(provider="openai") == ("sk-in-transaction", "")
        ProviderKey.objects.filter(provider="openai").update(base_url="http://seen.test")
        assert provider_key_plaintext(provider="openai") == (
            "sk-in-transaction",
            "http://seen.test",
        )
    assert "alpha" not in config_cache._memory


def _settings_queries(queries: CaptureQueriesContext) -> list[str]:
    return [
        q["sql"]
        for q in queries.captured_queries
        if "ai_providerkey" in q["sql"] or "ai_tenantbudget" in q["sql"]
    ]


def test_settings_are_read_once_then_remembered_until_they_change(committed, world) -> None:
    with tenant_context(world.tenant_a):
        provider_key_set(provider="openai", api_key="sk-first", base_url="http://one.test/v1")
        budget_set(monthly_limit_usd=Decimal("25.00"))
        assert provider_key_plaintext(provider="openai") == ("sk-first", "http://one.test/v1")
        with CaptureQueriesContext(connection) as queries:
            for _ in range(3):
                assert provider_key_plaintext(provider="openai") == (
                    "sk-first",
                    "http://one.test/v1",
                )
                assert budget_limit_usd() == Decimal("25.00")
        assert _settings_queries(queries) == []  # remembered: no query at all

        # A change through the services is seen at once by this process...
        provider_key_set(provider="openai", api_key="sk-second")
        assert provider_key_plaintext(provider="openai") == ("sk-second", "")
        budget_set(monthly_limit_usd=None)
        assert budget_limit_usd() is None
        provider_key_delete(provider="openai")
        assert provider_key_plaintext(provider="openai") is None


def test_a_change_committed_by_another_process_is_seen_on_the_next_read(committed, world) -> None:
    with tenant_context(world.tenant_a):
        provider_key_set(provider="gemini", api_key="sk-gem")
        assert provider_key_plaintext(provider="gemini") == ("sk-gem", "")
        # Another process writes the row (no signal reaches this process) and renews the
        # tenant's settings version after its commit, as the signal does over there.
        ProviderKey.objects.filter(provider="gemini").update(base_url="http://other.test")
        assert provider_key_plaintext(provider="gemini") == ("sk-gem", "")  # not yet told
        config_cache._redis().set(config_cache._version_key("alpha"), "renewed-elsewhere")
        assert provider_key_plaintext(provider="gemini") == ("sk-gem", "http://other.test")


def test_inside_a_transaction_reads_see_its_writes_and_a_rollback_leaves_nothing(
    committed, world
) -> None:
    with tenant_context(world.tenant_a):
        assert provider_key_plaintext(provider="openai") is None  # remembered: no key
        with pytest.raises(RuntimeError), transaction.atomic():
            provider_key_set(provider="openai", api_key="sk-uncommitted")
            assert provider_key_plaintext(provider="openai") == ("sk-uncommitted", "")
            raise RuntimeError("roll back")
        assert provider_key_plaintext(provider="openai") is None


def test_tenants_never_see_each_others_settings(committed, world) -> None:
    with tenant_context(world.tenant_a):
        provider_key_set(provider="openai", api_key="sk-alpha-only")
        budget_set(monthly_limit_usd=Decimal("5.00"))
        assert provider_key_plaintext(provider="openai") == ("sk-alpha-only", "")
    with tenant_context(world.tenant_b):
        assert provider_key_plaintext(provider="openai") is None
        assert budget_limit_usd() is None
        provider_key_set(provider="openai", api_key="sk-beta-only")
    with tenant_context(world.tenant_a):
        assert provider_key_plaintext(provider="openai") == ("sk-alpha-only", "")
        assert budget_limit_usd() == Decimal("5.00")
    assert budget_limit_usd() is None  # public schema: no tenant, nothing


def test_without_redis_the_tables_are_read_every_time(committed, world, settings) -> None:
    settings.REDIS_URL = "redis://127.0.0.1:1/0"  # nothing listens there
    with tenant_context(world.tenant_a):
        provider_key_set(provider="openai", api_key="sk-no-redis")
        assert provider_key_plaintext(provider="openai") == ("sk-no-redis", "")
        ProviderKey.objects.filter(provider="openai").update(base_url="http://direct.test")
        assert provider_key_plaintext(provider="openai") == ("sk-no-redis", "http://direct.test")


def _ask(route: str = "openai:gpt-4o-mini"):
    from apps.ai.chat import ChatMessage, ChatRequest, chat_complete

    return chat_complete(
        ChatRequest(
            system="Sales assistant.",
            messages=[ChatMessage(role="user", text="¿Cuánto tarda el envío?")],
            route=route,
        )
    )


def test_the_budget_stops_a_process_at_once_after_its_own_spending(
    committed, world, vendors, settings
) -> None:
    openai_stub, _ = vendors
    # One stub call (120 tokens in, 30 out) costs 15 USD at this price.
    settings.AI_PRICES_PER_MTOK = {"gpt-4o-mini": (100_000.0, 100_000.0)}
    with tenant_context(world.tenant_a):
        budget_set(monthly_limit_usd=Decimal("20.00"))
        assert _ask().provider == "openai"  # 0 spent: reads the sum (0), then adds 15
        assert _ask().provider == "openai"  # 15 < 20, remembered: adds 15 more
        with CaptureQueriesContext(connection) as queries:
            third = _ask()
        assert third.provider == "local"  # 30 >= 20 without asking the database for the sum
        assert not [q for q in queries.captured_queries if "SUM(" in q["sql"].upper()]
    assert len(openai_stub.seen) == 2
    with tenant_context(world.tenant_b):  # beta has no budget and spent nothing
        assert _ask().provider == "openai"


def test_spending_by_other_processes_counts_within_seconds(
    committed, world, vendors, settings, monkeypatch
) -> None:
    settings.AI_PRICES_PER_MTOK = {"gpt-4o-mini": (0.0, 0.0)}
    with tenant_context(world.tenant_a):
        budget_set(monthly_limit_usd=Decimal("50.00"))
        assert _ask().provider == "openai"
        # Another worker spends 60 USD (its record never passes through this process).
        UsageRecord.objects.create(
            kind="chat", purpose="reply", provider="openai", model="gpt-4o", cost_usd=60
        )
        assert _ask().provider == "openai"  # this process's sum is a few seconds old
        monkeypatch.setattr(config_cache, "SPEND_MAX_AGE_SECONDS", 0.0)
        result = _ask()
        assert result.provider == "local"
        note = UsageRecord.objects.get(pk=result.usage_id).budget_note
        assert "monthly budget 50.00 USD reached" in note
    with tenant_context(world.tenant_b):
        assert _ask().provider == "openai"
