"""Routes: which providers and models a call tries, in order.

A route is text, chosen per agent (``ChatRequest.route``) or platform-wide (AI_CHAT_ROUTE):

- ``auto``: every vendor that has a key (the tenant's own or the platform's) — Gemini, then
  OpenAI / the OpenAI-compatible endpoint — then the local responder;
- or a comma-separated list of ``provider[:model]`` entries, e.g.
  ``openai:gpt-4o-mini,gemini:gemini-2.5-flash-lite,local``. A provider without a model uses
  its default model setting.

Entries whose provider has no credentials are dropped, and the local responder is always the
last entry, so a turn always gets an answer grounded in its context.
"""

from __future__ import annotations

from dataclasses import dataclass

from django.conf import settings

from .providers.base import Credentials
from .selectors import provider_key_plaintext

PROVIDERS = ("gemini", "openai", "local")
LOCAL_MODEL = "local-extractive"


@dataclass(frozen=True)
class RouteEntry:
    provider: str
    model: str

    def __str__(self) -> str:
        return f"{self.provider}:{self.model}"


def default_model(provider: str) -> str:
    if provider == "gemini":
        return str(settings.GEMINI_CHAT_MODEL)
    if provider == "openai":
        return str(settings.OPENAI_CHAT_MODEL)
    return LOCAL_MODEL


def parse_route(spec: str) -> list[RouteEntry]:
    """Entries of ``spec`` in order (no credential check). Raises ValueError on bad text."""
    entries: list[RouteEntry] = []
    for raw in spec.split(","):
        item = raw.strip()
        if not item:
            continue
        provider, _, model = item.partition(":")
        provider = provider.strip().lower()
        if provider not in PROVIDERS:
            raise ValueError(f"unknown provider {provider!r} in route (use {', '.join(PROVIDERS)})")
        entries.append(RouteEntry(provider, model.strip() or default_model(provider)))
    return entries


def credentials_for(provider: str) -> Credentials:
    """The tenant's own key when it has one, else the platform's; source "none" without either."""
    if provider == "local":
        return Credentials(api_key=None, source="none")
    own = provider_key_plaintext(provider=provider)
    if provider == "gemini":
        base_url = settings.GEMINI_BASE_URL
        if own:
            return Credentials(api_key=own[0], base_url=base_url, source="tenant")
        if settings.GOOGLE_API_KEY:
            return Credentials(settings.GOOGLE_API_KEY, base_url, source="env")
        return Credentials(api_key=None, base_url=base_url, source="none")
    if own:
        return Credentials(
            api_key=own[0], base_url=own[1] or settings.OPENAI_BASE_URL, source="tenant"
        )
    if settings.OPENAI_API_KEY or settings.OPENAI_BASE_URL:
        # A local OpenAI-compatible server (Ollama, vLLM) usually needs no key.
        return Credentials(
            settings.OPENAI_API_KEY or "unused", settings.OPENAI_BASE_URL, source="env"
        )
    return Credentials(api_key=None, source="none")


def resolve_route(spec: str | None) -> list[tuple[RouteEntry, Credentials]]:
    """The entries a call will try, each with its credentials, ending with the local responder."""
    text = (spec or settings.AI_CHAT_ROUTE or "auto").strip()
    wanted = parse_route("gemini,openai") if text.lower() == "auto" else parse_route(text)
    resolved: list[tuple[RouteEntry, Credentials]] = []
    cache: dict[str, Credentials] = {}
    for entry in wanted:
        if entry.provider == "local":
            continue
        if entry.provider not in cache:
            cache[entry.provider] = credentials_for(entry.provider)
        credentials = cache[entry.provider]
        if credentials.source != "none":
            resolved.append((entry, credentials))
    resolved.append((RouteEntry("local", LOCAL_MODEL), Credentials(api_key=None)))
    return resolved
