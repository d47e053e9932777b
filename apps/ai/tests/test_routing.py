"""Route text, price lookups and strict-schema detection."""

from __future__ import annotations

from decimal import Decimal

import pytest

from apps.ai.pricing import cheaper_first, estimate_cost
from apps.ai.providers.openai_chat import strict_compatible
from apps.ai.routing import RouteEntry, parse_route, resolve_route

from .test_local_responder import STRICT_SCHEMA


def test_route_text_names_providers_and_models_in_order(settings) -> None:
    settings.OPENAI_CHAT_MODEL = "gpt-4o-mini"
    assert parse_route(" openai , gemini:gemini-2.5-flash-lite,local") == [
        RouteEntry("openai", "gpt-4o-mini"),
        RouteEntry("gemini", "gemini-2.5-flash-lite"),
        RouteEntry("local", "local-extractive"),
    ]
    with pytest.raises(ValueError, match="unknown provider 'anthropic'"):
        parse_route("anthropic:claude")


@pytest.mark.django_db
def test_entries_without_credentials_are_dropped_and_local_always_ends(settings) -> None:
    settings.GOOGLE_API_KEY = None
    settings.OPENAI_API_KEY = "sk-platform"
    settings.OPENAI_BASE_URL = None
    route = [(str(entry), creds.source) for entry, creds in resolve_route("gemini,openai:gpt-4o")]
    assert route == [("openai:gpt-4o", "env"), ("local:local-extractive", "none")]
    settings.OPENAI_API_KEY = None
    assert [str(e) for e, _ in resolve_route("auto")] == ["local:local-extractive"]
    # An OpenAI-compatible server (Ollama) needs a base URL, not a key.
    settings.OPENAI_BASE_URL = "http://127.0.0.1:11434/v1"
    settings.AI_CHAT_ROUTE = "auto"
    first, _ = resolve_route(None)[0]
    assert str(first) == "openai:gpt-4o-mini"


def test_prices_match_versioned_names_and_unknown_models_cost_nothing() -> None:
    assert estimate_cost("gpt-4o-mini-2024-07-18", 1_000_000, 0) == Decimal("0.15")
    assert estimate_cost("models/gemini-2.5-flash", 0, 1_000_000) == Decimal("2.5")
    assert estimate_cost("llama3.1:8b", 10**9, 10**9) == 0
    assert cheaper_first(["gpt-4o", "gemini-2.5-flash-lite", "gpt-4o-mini"]) == [
        "gemini-2.5-flash-lite",
        "gpt-4o-mini",
        "gpt-4o",
    ]


def test_strict_mode_only_for_closed_schemas() -> None:
    from apps.ai.chat import REPLY_SCHEMA

    assert strict_compatible(STRICT_SCHEMA)
    assert not strict_compatible(REPLY_SCHEMA)
