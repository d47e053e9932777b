"""Writes of the model layer: usage records, tenants' own keys, budgets."""

from __future__ import annotations

import logging
from contextlib import nullcontext
from dataclasses import dataclass
from decimal import Decimal

from django.db import connection, transaction

from eva.db import current_schema

from .config_cache import month_spend_add
from .crypto import encrypt
from .models import ProviderKey, TenantBudget, UsageRecord
from .pricing import estimate_cost

logger = logging.getLogger(__name__)


@dataclass
class UsageEntry:
    kind: str
    purpose: str
    provider: str
    model: str
    agent_id: int | None = None
    tokens_in: int = 0
    tokens_out: int = 0
    items: int = 0
    latency_ms: int = 0
    success: bool = True
    error: str = ""
    attempts: int = 1
    fell_back: bool = False
    budget_note: str = ""
    key_source: str = "none"


def usage_record_create(*, entry: UsageEntry) -> UsageRecord | None:
    """Meter one call in the current tenant schema.

    Returns None in the public schema (platform checks, no tenant to bill): usage tables exist
    only in tenant schemas. Metering must never break a customer's turn, so a failed insert is
    logged and swallowed.
    """
    if current_schema() == "public":
        return None
    try:
        # Inside a caller's transaction, a savepoint, so a failed insert cannot poison it;
        # outside any, the insert is its own transaction already (autocommit), and wrapping it
        # would only add a BEGIN and a COMMIT round trip to every metered call.
        with transaction.atomic() if connection.in_atomic_block else nullcontext():
            record = UsageRecord.objects.create(
                kind=entry.kind,
                purpose=entry.purpose[:32],
                provider=entry.provider[:32],
                model=entry.model[:128],
                agent_id=entry.agent_id,
                tokens_in=max(entry.tokens_in, 0),
                tokens_out=max(entry.tokens_out, 0),
                items=entry.items,
                latency_ms=max(entry.latency_ms, 0),
                success=entry.success,
                error=entry.error[:300],
                attempts=min(entry.attempts, 32767),
                fell_back=entry.fell_back,
                budget_note=entry.budget_note[:200],
                key_source=entry.key_source,
                cost_usd=estimate_cost(entry.model, entry.tokens_in, entry.tokens_out)
                if entry.success
                else 0,
            )
        month_spend_add(Decimal(record.cost_usd).quantize(Decimal("1e-8")))
        return record
    except Exception:
        logger.exception("usage record could not be written")
        return None


def provider_key_set(*, provider: str, api_key: str, base_url: str = "") -> ProviderKey:
    """Store (or replace) the tenant's own key for ``provider``, encrypted.

    Must run in a tenant schema. The plaintext is not kept anywhere else and never returned.
    """
    if provider not in ProviderKey.Provider.values:
        raise ValueError(f"unknown provider {provider!r}")
    api_key = api_key.strip()
    if not api_key:
        raise ValueError("the key is empty")
    record, _ = ProviderKey.objects.update_or_create(
        provider=provider,
        defaults={"encrypted_key": encrypt(api_key), "base_url": base_url.strip()},
    )
    return record


def provider_key_delete(*, provider: str) -> bool:
    deleted, _ = ProviderKey.objects.filter(provider=provider).delete()
    return bool(deleted)


def budget_set(*, monthly_limit_usd: Decimal | None) -> TenantBudget:
    """Set (or clear, with None) the tenant's monthly spend limit."""
    budget = TenantBudget.objects.order_by("id").first() or TenantBudget()
    budget.monthly_limit_usd = monthly_limit_usd
    budget.save()
    return budget
