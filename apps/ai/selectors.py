"""Reads of the model layer: usage totals, budgets, tenants' keys (never shown in plaintext)."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from decimal import Decimal

from django.db.models import Count, Q, Sum
from django.db.models.functions import TruncDate
from django.utils import timezone

from eva.db import current_schema

from .config_cache import tenant_ai_settings
from .crypto import decrypt
from .models import ProviderKey, UsageRecord


@dataclass(frozen=True)
class UsageTotal:
    day: dt.date
    provider: str
    model: str
    calls: int
    failures: int
    tokens_in: int
    tokens_out: int
    cost_usd: Decimal


def usage_totals_by_day_and_model(
    *, since: dt.date | None = None, until: dt.date | None = None
) -> list[UsageTotal]:
    """The current tenant's usage per day and model, newest day first.

    Days are calendar days in the active time zone; ``until`` is inclusive.
    """
    records = UsageRecord.objects.all()
    if since is not None:
        records = records.filter(created_at__date__gte=since)
    if until is not None:
        records = records.filter(created_at__date__lte=until)
    rows = (
        records.annotate(day=TruncDate("created_at"))
        .values("day", "provider", "model")
        .annotate(
            calls=Count("id"),
            failures=Count("id", filter=Q(success=False)),
            tokens_in=Sum("tokens_in"),
            tokens_out=Sum("tokens_out"),
            cost_usd=Sum("cost_usd"),
        )
        .order_by("-day", "provider", "model")
    )
    return [
        UsageTotal(
            day=row["day"],
            provider=row["provider"],
            model=row["model"],
            calls=row["calls"],
            failures=row["failures"],
            tokens_in=row["tokens_in"] or 0,
            tokens_out=row["tokens_out"] or 0,
            cost_usd=row["cost_usd"] or Decimal(0),
        )
        for row in rows
    ]


def month_spend_usd(*, now: dt.datetime | None = None) -> Decimal:
    """Estimated spend of the current tenant since the start of this calendar month."""
    now = now or timezone.now()
    start = timezone.localtime(now).replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    total = UsageRecord.objects.filter(created_at__gte=start).aggregate(s=Sum("cost_usd"))["s"]
    return total or Decimal(0)


def budget_limit_usd() -> Decimal | None:
    """The tenant's monthly limit, or None (no budget, or outside any tenant)."""
    return tenant_ai_settings().budget_limit_usd


@dataclass(frozen=True)
class ProviderKeyInfo:
    """What may be shown about a stored key: that it exists, never the key itself."""

    provider: str
    base_url: str
    updated_at: dt.datetime


def provider_keys_list() -> list[ProviderKeyInfo]:
    if current_schema() == "public":
        return []
    return [
        ProviderKeyInfo(k.provider, k.base_url, k.updated_at)
        for k in ProviderKey.objects.order_by("provider")
    ]


def provider_key_plaintext(*, provider: str) -> tuple[str, str] | None:
    """(key, base_url) of the current tenant's own key, for making calls only; None if unset."""
    stored = tenant_ai_settings().keys.get(provider)
    if stored is None:
        return None
    encrypted_key, base_url = stored
    return decrypt(encrypted_key), base_url
