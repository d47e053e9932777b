"""Vendor chat through the real SDKs against local servers speaking their wire formats."""

from __future__ import annotations

import json
import logging

import pytest
from django_tenants.utils import tenant_context

from apps.ai.chat import REPLY_SCHEMA, ChatMessage, ChatRequest, ContextPassage, chat_complete
from apps.ai.models import UsageRecord

pytestmark = pytest.mark.django_db

VALID = json.dumps({"reply": "El envío tarda 2 días.", "handoff": False, "lead": {"name": "Ana"}})


def _request(**kwargs) -> ChatRequest:
    return ChatRequest(
        system="You are Alpha Store's sales assistant.",
        messages=[
            ChatMessage(role="user", text="Hola"),
            ChatMessage(role="assistant", text="¡Hola! ¿En qué te ayudo?"),
            ChatMessage(role="user", text="¿Cuánto tarda el envío?"),
        ],
        context=[ContextPassage(ref="c1", text="El envío tarda 2 días.", source="faq.pdf")],
        **kwargs,
    )


def test_openai_reply_and_its_usage_record(world, vendors) -> None:
    openai_stub, gemini_stub = vendors
    with tenant_context(world.tenant_a):
        result = chat_complete(_request(agent_id=11))
        record = UsageRecord.objects.get(pk=result.usage_id)
    assert (result.provider, result.model, result.text) == (
        "openai",
        "gpt-4o-mini",
        "Hola, te ayudo con gusto.",
    )
    assert (result.tokens_in, result.tokens_out, result.finish_reason) == (120, 30, "stop")
    assert not result.fell_back and result.payload is None
    sent = openai_stub.seen[0]
    assert sent.path == "/v1/chat/completions"
    assert sent.headers["authorization"] == "Bearer sk-platform-openai-key"
    assert [m["role"] for m in sent.body["messages"]] == ["system", "user", "assistant", "user"]
    assert "El envío tarda 2 días." in sent.body["messages"][0]["content"]
    assert not gemini_stub.seen
    assert (record.provider, record.model, record.tokens_in, record.tokens_out) == (
        "openai",
        "gpt-4o-mini",
        120,
        30,
    )
    assert record.success and record.agent_id == 11 and record.key_source == "env"
    assert record.cost_usd > 0
    with tenant_context(world.tenant_b):
        assert not UsageRecord.objects.exists()


def test_gemini_reply_through_generate_content(world, vendors, settings) -> None:
    _, gemini_stub = vendors
    settings.AI_CHAT_ROUTE = "gemini:gemini-2.5-flash-lite"
    with tenant_context(world.tenant_a):
        result = chat_complete(_request())
    assert (result.provider, result.model, result.tokens_in, result.tokens_out) == (
        "gemini",
        "gemini-2.5-flash-lite",
        100,
        20,
    )
    assert result.text == "Hola, te ayudo con gusto." and result.finish_reason == "stop"
    sent = gemini_stub.seen[0]
    # The API version in the path is the SDK's choice; the method is the wire contract.
    assert sent.path.endswith("/models/gemini-2.5-flash-lite:generateContent")
    assert sent.headers["x-goog-api-key"] == "platform-google-key"
    assert [c["role"] for c in sent.body["contents"]] == ["user", "model", "user"]
    assert "El envío tarda 2 días." in sent.body["systemInstruction"]["parts"][0]["text"]


def test_structured_output_is_requested_and_parsed_by_both_vendors(world, vendors, settings):
    openai_stub, gemini_stub = vendors
    openai_stub.reply_text = gemini_stub.reply_text = VALID
    with tenant_context(world.tenant_a):
        from_openai = chat_complete(_request(response_schema=REPLY_SCHEMA))
        settings.AI_CHAT_ROUTE = "gemini"
        from_gemini = chat_complete(_request(response_schema=REPLY_SCHEMA))
    for result in (from_openai, from_gemini):
        assert result.payload == json.loads(VALID)
        assert result.text == "El envío tarda 2 días."
    response_format = openai_stub.seen[0].body["response_format"]
    assert response_format["type"] == "json_schema"
    assert response_format["json_schema"]["schema"] == REPLY_SCHEMA
    assert response_format["json_schema"]["strict"] is False  # REPLY_SCHEMA's lead is open
    config = gemini_stub.seen[0].body["generationConfig"]
    assert config["responseMimeType"] == "application/json"
    assert config["responseJsonSchema"] == REPLY_SCHEMA


def test_a_500_is_retried_then_succeeds(world, vendors) -> None:
    openai_stub, gemini_stub = vendors
    openai_stub.script = [{"status": 500}]
    with tenant_context(world.tenant_a):
        result = chat_complete(_request())
        record = UsageRecord.objects.get(pk=result.usage_id)
    assert result.provider == "openai" and not result.fell_back
    assert len(openai_stub.seen) == 2 and not gemini_stub.seen
    assert record.attempts == 2 and record.success


def test_a_timeout_on_the_primary_falls_back_and_the_record_says_so(world, vendors, settings):
    openai_stub, _ = vendors
    settings.AI_TIMEOUT_SECONDS = 0.3
    settings.AI_MAX_RETRIES = 1
    openai_stub.script = [{"sleep": 1.0}, {"sleep": 1.0}]
    with tenant_context(world.tenant_a):
        result = chat_complete(_request(agent_id=5))
        records = list(UsageRecord.objects.order_by("id"))
    assert result.provider == "gemini" and result.fell_back
    assert len(openai_stub.seen) == 2  # first try + one retry
    failed, answered = records
    assert (failed.provider, failed.success, failed.error, failed.attempts) == (
        "openai",
        False,
        "timeout",
        2,
    )
    assert answered.pk == result.usage_id
    assert answered.provider == "gemini" and answered.success and answered.fell_back
    assert "openai:gpt-4o-mini: timeout" in answered.error


def test_the_circuit_breaker_skips_a_failing_provider(world, vendors, settings) -> None:
    openai_stub, _ = vendors
    settings.AI_MAX_RETRIES = 0
    openai_stub.script = [{"status": 503}] * 10
    with tenant_context(world.tenant_a):
        first = chat_complete(_request())
        second = chat_complete(_request())  # second failure: the circuit opens (threshold 2)
        assert len(openai_stub.seen) == 2
        third = chat_complete(_request())
        record = UsageRecord.objects.get(pk=third.usage_id)
    assert len(openai_stub.seen) == 2  # skipped: no request reached the failing provider
    assert [r.provider for r in (first, second, third)] == ["gemini"] * 3
    assert third.fell_back and "skipped (circuit open)" in record.error
    # The platform key's circuit is shared: tenant B skips OpenAI too.
    with tenant_context(world.tenant_b):
        assert chat_complete(_request()).provider == "gemini"
    assert len(openai_stub.seen) == 2


def test_every_vendor_down_still_answers_with_the_local_responder(world, vendors, settings):
    openai_stub, gemini_stub = vendors
    settings.AI_MAX_RETRIES = 0
    openai_stub.script = [{"status": 500}]
    gemini_stub.script = [{"status": 429}]
    with tenant_context(world.tenant_a):
        result = chat_complete(_request())
    assert result.provider == "local" and result.fell_back
    assert "2 días" in result.text


def test_malformed_json_is_retried_once_then_degrades_to_plain_text(world, vendors) -> None:
    openai_stub, _ = vendors
    openai_stub.script = [{"text": "{not json"}, {"text": VALID}]
    with tenant_context(world.tenant_a):
        recovered = chat_complete(_request(response_schema=REPLY_SCHEMA))
    assert recovered.payload is not None and recovered.text == "El envío tarda 2 días."
    assert len(openai_stub.seen) == 2

    openai_stub.seen.clear()
    openai_stub.script = [
        {"text": "{not json"},
        {"text": '{"reply": 3}'},  # valid JSON, wrong schema
        {"text": "El envío tarda 2 días, ¿algo más?"},
    ]
    with tenant_context(world.tenant_a):
        degraded = chat_complete(_request(response_schema=REPLY_SCHEMA))
        record = UsageRecord.objects.get(pk=degraded.usage_id)
    assert degraded.payload is None
    assert degraded.text == "El envío tarda 2 días, ¿algo más?"
    assert "response_format" not in openai_stub.seen[2].body  # plain text asked the third time
    assert record.success and record.attempts == 3 and record.tokens_in == 360


def test_a_tenant_key_is_used_for_that_tenant_only_and_never_logged(world, vendors, caplog) -> None:
    from apps.ai.models import ProviderKey
    from apps.ai.services import provider_key_set

    openai_stub, _ = vendors
    secret = "sk-tenant-alpha-own-key-0123456789"
    caplog.set_level(logging.DEBUG)
    with tenant_context(world.tenant_a):
        provider_key_set(provider="openai", api_key=secret)
        stored = ProviderKey.objects.get(provider="openai")
        assert secret not in stored.encrypted_key
        alpha = chat_complete(_request())
        alpha_record = UsageRecord.objects.get(pk=alpha.usage_id)
    with tenant_context(world.tenant_b):
        beta = chat_complete(_request())
        beta_record = UsageRecord.objects.get(pk=beta.usage_id)
        assert not ProviderKey.objects.exists()
    auth = [seen.headers["authorization"] for seen in openai_stub.seen]
    assert auth == [f"Bearer {secret}", "Bearer sk-platform-openai-key"]
    assert (alpha_record.key_source, beta_record.key_source) == ("tenant", "env")
    assert secret not in caplog.text
    assert secret not in repr(alpha) and secret not in str(alpha_record.__dict__)


def test_a_failing_tenant_key_opens_only_that_tenants_circuit(world, vendors, settings, caplog):
    from apps.ai.services import provider_key_set

    _, gemini_stub = vendors
    settings.AI_CHAT_ROUTE = "gemini"
    settings.AI_MAX_RETRIES = 0
    secret = "AIza-alpha-own-gemini-key"
    caplog.set_level(logging.DEBUG)
    with tenant_context(world.tenant_a):
        provider_key_set(provider="gemini", api_key=secret)
    gemini_stub.script = [{"status": 500}, {"status": 500}]
    with tenant_context(world.tenant_a):
        answers = [chat_complete(_request()).provider for _ in range(3)]
    assert answers == ["local", "local", "local"]
    assert len(gemini_stub.seen) == 2  # the third call skipped alpha's open circuit
    assert {seen.headers["x-goog-api-key"] for seen in gemini_stub.seen} == {secret}
    with tenant_context(world.tenant_b):  # beta uses the platform key, its circuit is closed
        assert chat_complete(_request()).provider == "gemini"
    assert gemini_stub.seen[-1].headers["x-goog-api-key"] == "platform-google-key"
    assert secret not in caplog.text
