"""A tenant's keys and budget are remembered per process and re-read as soon as they change:
in this process at once, in other processes through the settings version in Redis; never
inside a transaction, never across tenants, and without Redis the tables are simply read."""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal

import pytest
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext
from django_tenants.utils import schema_context, tenant_context

from apps.ai import config_cache
from apps.ai.models import ProviderKey, TenantBudget
from apps.ai.selectors import budget_limit_usd, provider_key_plaintext
from apps.ai.services import budget_set, provider_key_delete, provider_key_set


@pytest.fixture
def committed(django_db_setup, django_db_blocker, world) -> Iterator[None]:
    """Database access outside a test transaction, as a worker has (autocommit); the keys and
    budgets written are deleted afterwards."""
    config_cache._memory.clear()
    with django_db_blocker.unblock():
        yield
        for schema in ("alpha", "beta"):
            with schema_context(schema):
                ProviderKey.objects.all().delete()
                TenantBudget.objects.all().delete()
    config_cache._memory.clear()


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
