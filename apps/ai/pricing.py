"""Estimated cost of a call from the price table in settings (USD per million tokens)."""

from __future__ import annotations

from decimal import Decimal

from django.conf import settings

_MILLION = Decimal(1_000_000)


def price_of(model: str) -> tuple[Decimal, Decimal]:
    """(input, output) USD per million tokens; a model missing from the table costs 0.

    Versioned names ("gpt-4o-mini-2024-07-18", "models/gemini-2.5-flash") match their base entry.
    """
    table: dict[str, tuple[float, float]] = settings.AI_PRICES_PER_MTOK
    name = model.removeprefix("models/")
    best = ""
    for candidate in table:
        if (name == candidate or name.startswith(candidate + "-")) and len(candidate) > len(best):
            best = candidate
    if not best:
        return Decimal(0), Decimal(0)
    price_in, price_out = table[best]
    return Decimal(str(price_in)), Decimal(str(price_out))


def estimate_cost(model: str, tokens_in: int, tokens_out: int) -> Decimal:
    price_in, price_out = price_of(model)
    return (price_in * tokens_in + price_out * tokens_out) / _MILLION


def cheaper_first(models: list[str]) -> list[str]:
    """Models sorted by output+input price, cheapest first (stable for equal prices)."""
    return sorted(models, key=lambda m: sum(price_of(m)))
