"""manage.py ai_check reports reachability, routes and the embedding model, never a key."""

from __future__ import annotations

import json
from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from django_tenants.utils import tenant_context

from apps.ai.services import provider_key_set

pytestmark = pytest.mark.django_db


def _run(*args: str) -> str:
    out, err = StringIO(), StringIO()
    call_command("ai_check", *args, stdout=out, stderr=err)
    return out.getvalue() + err.getvalue()


def test_reports_reachable_providers_and_the_route_without_secrets(world, vendors) -> None:
    openai_stub, gemini_stub = vendors
    text = _run()
    assert "sk-platform-openai-key" not in text and "platform-google-key" not in text
    assert (
        "chat route: openai:gpt-4o-mini -> gemini:gemini-2.5-flash -> local:local-extractive"
        in (text)
    )
    report = json.loads(_run("--json"))
    statuses = {p["provider"]: (p["key"], p["status"]) for p in report["providers"]}
    assert statuses == {
        "gemini": ("set (env)", "ok"),
        "openai": ("set (env)", "ok"),
        "local": ("not needed", "ok"),
    }
    assert report["embedding"] == {
        "model": "gemini/gemini-embedding-001@1536",
        "dimensions": 1536,
        "storage": "vector",
    }
    assert openai_stub.seen[0].path == "/v1/models"
    assert gemini_stub.seen[0].path.endswith("/models/gemini-2.5-flash")


def test_an_unreachable_provider_fails_the_command(world, vendors) -> None:
    openai_stub, _ = vendors
    openai_stub.script = [{"status": 401}]
    with pytest.raises(CommandError, match="not reachable: openai"):
        _run("--route", "openai")


def test_tenant_keys_count_for_that_schema_only_and_stay_secret(world, vendors, settings):
    settings.OPENAI_API_KEY = None
    settings.OPENAI_BASE_URL = None
    with tenant_context(world.tenant_a):
        provider_key_set(
            provider="openai", api_key="sk-alpha-own-secret", base_url=vendors[0].base_url
        )
    alpha = _run("--schema", "alpha", "--offline")
    beta = _run("--schema", "beta", "--offline")
    assert "set (tenant)" in alpha and "sk-alpha-own-secret" not in alpha
    assert "openai:gpt-4o-mini" in alpha and "openai:gpt-4o-mini" not in beta


def test_a_bad_route_is_refused(world) -> None:
    with pytest.raises(CommandError, match="unknown provider"):
        _run("--route", "anthropic:claude", "--offline")
