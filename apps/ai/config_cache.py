"""Per-process memory of a tenant's model settings (its own provider keys, its monthly budget).

Every reply turn needs them, and they change a few times a year: two queries per turn were a
visible share of a turn's cost (bench/agents_turn.py). Each process keeps what it read, per
tenant schema, together with the tenant's *settings version*, a random stamp in Redis that every
committed change of a key or a budget replaces (``post_save`` / ``post_delete`` of the models,
so any writer is covered). A read costs one Redis GET: the same version means the memory is
current; a new one means read the tables again.

Correctness rules:

- Inside a transaction (``atomic`` block) nothing is remembered or reused: that transaction may
  have written the settings itself (its reads must see its own writes) and may still roll back
  (what it read must not outlive it).
- The stamp changes after the commit; a process that reads between the commit and the new stamp
  gets the settings of a moment ago, as if it had read just before the commit.
- If Redis cannot be reached, the tables are read every time (no memory without a version), and
  every memory is also forgotten after ``MAX_AGE_SECONDS`` in case a stamp change was lost.
- Stored keys stay encrypted in memory; they are decrypted on use, as before.
"""

from __future__ import annotations

import logging
import time
import uuid
from dataclasses import dataclass, field
from decimal import Decimal
from functools import lru_cache
from typing import Any

import redis
from django.conf import settings as django_settings
from django.db import connection, transaction

from eva.db import current_schema

from .models import ProviderKey, TenantBudget

logger = logging.getLogger(__name__)

MAX_AGE_SECONDS = 60.0


@dataclass(frozen=True)
class TenantAiSettings:
    # provider -> (encrypted key, base_url)
    keys: dict[str, tuple[str, str]] = field(default_factory=dict)
    budget_limit_usd: Decimal | None = None


_EMPTY = TenantAiSettings()
# schema -> (version, read at, settings)
_memory: dict[str, tuple[bytes, float, TenantAiSettings]] = {}


@lru_cache(maxsize=1)
def _client(url: str) -> redis.Redis:
    return redis.Redis.from_url(url, socket_timeout=0.5, socket_connect_timeout=0.5)


def _redis() -> redis.Redis:
    return _client(django_settings.REDIS_URL)


def _version_key(schema: str) -> str:
    return f"eva:ai:settings-version:{schema}"


def _read_tables() -> TenantAiSettings:
    keys = {
        row.provider: (row.encrypted_key, row.base_url)
        for row in ProviderKey.objects.only("provider", "encrypted_key", "base_url")
    }
    budget = TenantBudget.objects.order_by("id").only("monthly_limit_usd").first()
    return TenantAiSettings(
        keys=keys, budget_limit_usd=budget.monthly_limit_usd if budget else None
    )


def _current_version(schema: str) -> bytes | None:
    client = _redis()
    key = _version_key(schema)
    try:
        version = client.get(key)
        if version is None:
            client.set(key, uuid.uuid4().hex, nx=True)
            version = client.get(key)
    except redis.RedisError:
        logger.warning("AI settings version unavailable; reading the tables")
        return None
    return version if isinstance(version, bytes) else None


def tenant_ai_settings() -> TenantAiSettings:
    """The current tenant's own keys and budget (nothing in the public schema)."""
    schema = current_schema()
    if schema == "public":
        return _EMPTY
    if connection.in_atomic_block:
        return _read_tables()
    version = _current_version(schema)
    remembered = _memory.get(schema)
    now = time.monotonic()
    if (
        version is not None
        and remembered is not None
        and remembered[0] == version
        and now - remembered[1] < MAX_AGE_SECONDS
    ):
        return remembered[2]
    settings = _read_tables()
    if version is not None:
        _memory[schema] = (version, now, settings)
    return settings


def tenant_ai_settings_changed(schema: str | None = None) -> None:
    """Make every process read the tenant's settings again once the current transaction
    commits (at once outside a transaction). Called by the models' signals."""
    schema = schema or current_schema()
    if schema == "public":
        return
    _memory.pop(schema, None)

    def stamp() -> None:
        _memory.pop(schema, None)
        try:
            _redis().set(_version_key(schema), uuid.uuid4().hex)
        except redis.RedisError:
            # Other processes notice within MAX_AGE_SECONDS.
            logger.warning("AI settings version could not be renewed")

    transaction.on_commit(stamp)


def _on_change(sender: Any, **kwargs: Any) -> None:
    tenant_ai_settings_changed()


def connect_signals() -> None:
    from django.db.models.signals import post_delete, post_save

    for model in (ProviderKey, TenantBudget):
        post_save.connect(_on_change, sender=model, dispatch_uid=f"ai-settings-{model.__name__}")
        post_delete.connect(_on_change, sender=model, dispatch_uid=f"ai-settings-d{model.__name__}")


# --- this month's spend, for the budget check --------------------------------------------------
#
# The budget check ran SUM(cost_usd) over the month's usage records on every turn: O(records),
# ~100 ms at 200k records a month (a busy tenant). Each process now remembers the sum per tenant
# and month and adds its own records' costs as it writes them (usage_record_create), so its own
# spending counts at once; other processes' spending is picked up when the sum is read again:
# every SPEND_MAX_AGE_SECONDS, or every SPEND_NEAR_LIMIT_SECONDS once within 10% of the limit.
# Outside a transaction only, like the settings above.

SPEND_MAX_AGE_SECONDS = 30.0
SPEND_NEAR_LIMIT_SECONDS = 2.0

# (schema, "YYYY-MM") -> (read at, spent)
_spend: dict[tuple[str, str], tuple[float, Decimal]] = {}


def _month_key(schema: str) -> tuple[str, str]:
    from django.utils import timezone

    return schema, timezone.localtime().strftime("%Y-%m")


def month_spend_for_budget(limit: Decimal) -> Decimal:
    """This month's estimated spend of the current tenant, as the budget check needs it."""
    from .selectors import month_spend_usd

    schema = current_schema()
    if schema == "public" or connection.in_atomic_block:
        return month_spend_usd()
    key = _month_key(schema)
    remembered = _spend.get(key)
    now = time.monotonic()
    if remembered is not None:
        read_at, spent = remembered
        near = spent >= limit * Decimal("0.9")
        max_age = SPEND_NEAR_LIMIT_SECONDS if near else SPEND_MAX_AGE_SECONDS
        if now - read_at < max_age:
            return spent
    spent = month_spend_usd()
    _spend[key] = (now, spent)
    return spent


def month_spend_add(cost: Decimal) -> None:
    """Count a usage record this process just wrote (autocommit) in the remembered spend."""
    if not cost or connection.in_atomic_block:
        return
    key = _month_key(current_schema())
    remembered = _spend.get(key)
    if remembered is not None:
        _spend[key] = (remembered[0], remembered[1] + Decimal(cost))
