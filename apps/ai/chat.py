"""Chat completions for EVA: one call in, one structured result out, whatever the provider.

Public interface (used by apps.agents)::

    chat_complete(ChatRequest(system=..., messages=[ChatMessage("user", "...")],
                              context=[ContextPassage(ref, text, source)],
                              response_schema=REPLY_SCHEMA or None, ...)) -> ChatResult

The request's route (or AI_CHAT_ROUTE) names the providers to try in order; each gets a timeout
and retries with backoff on 429/5xx/timeouts, a provider whose circuit is open is skipped, and
the offline local responder (extractive, from ``context`` only) always ends the route, so a turn
never crashes for want of a model. Every provider tried writes a usage record in the current
tenant schema; the one that answered says whether the turn fell back, and any budget downgrade.

Structured output: with ``response_schema`` the vendor's JSON-schema mode is used and the reply
is parsed and validated (jsonschema). Invalid JSON is asked for once more; if it is invalid
again the same provider is asked for plain text, and ``payload`` is None.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any, Literal

import jsonschema
from django.conf import settings

from eva.db import current_schema

from . import breaker
from .calls import AttemptsExhausted, call_with_retries
from .config_cache import month_spend_for_budget
from .errors import InvalidOutput, ProviderError
from .models import UsageRecord
from .pricing import cheaper_first
from .providers import local_responder
from .providers.base import ChatProvider, Credentials, ProviderCall, ProviderReply
from .routing import RouteEntry, resolve_route
from .selectors import budget_limit_usd
from .services import UsageEntry, usage_record_create

logger = logging.getLogger(__name__)

# A schema agents may use for replies: the text, a hand-off flag and the lead fields gathered.
REPLY_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "reply": {"type": "string"},
        "handoff": {"type": "boolean"},
        "lead": {
            "type": "object",
            "properties": {
                "name": {"type": ["string", "null"]},
                "email": {"type": ["string", "null"]},
                "phone": {"type": ["string", "null"]},
                "interest": {"type": ["string", "null"]},
            },
        },
    },
    "required": ["reply", "handoff"],
}


@dataclass(frozen=True)
class ChatMessage:
    role: Literal["user", "assistant"]
    text: str


@dataclass(frozen=True)
class ContextPassage:
    ref: str
    text: str
    source: str = ""


@dataclass
class ChatRequest:
    system: str
    messages: list[ChatMessage]
    context: list[ContextPassage] = field(default_factory=list)
    response_schema: dict[str, Any] | None = None
    purpose: str = "reply"
    agent_id: int | None = None
    route: str | None = None
    language_hint: str | None = None
    max_output_tokens: int = 512


@dataclass(frozen=True)
class ChatResult:
    text: str
    payload: dict[str, Any] | None
    provider: str
    model: str
    tokens_in: int
    tokens_out: int
    latency_ms: int
    finish_reason: str
    fell_back: bool
    usage_id: int | None


def _vendor(provider: str) -> ChatProvider:
    # Imported on first use: a deployment without keys never loads the vendor SDKs.
    if provider == "openai":
        from .providers.openai_chat import OpenAIProvider

        return OpenAIProvider()
    from .providers.gemini_chat import GeminiProvider

    return GeminiProvider()


def _system_with_context(request: ChatRequest) -> str:
    parts = [request.system.strip()]
    if request.context:
        lines = [
            f"[{p.ref}] ({p.source}) {p.text}" if p.source else f"[{p.ref}] {p.text}"
            for p in request.context
        ]
        parts.append("Context passages (the only facts you may state):\n" + "\n".join(lines))
    else:
        parts.append("Context passages: none. Do not state facts about the business.")
    if request.language_hint:
        parts.append(f"Reply in the customer's language ({request.language_hint}).")
    return "\n\n".join(p for p in parts if p)


@lru_cache(maxsize=64)
def _validator_for(schema_json: str) -> Any:
    schema = json.loads(schema_json)
    cls = jsonschema.validators.validator_for(schema)
    cls.check_schema(schema)
    return cls(schema)


def schema_validate(instance: Any, schema: dict[str, Any]) -> None:
    """``jsonschema.validate`` without re-checking the schema itself on every call.

    Checking the schema against its meta-schema was ~20 ms of CPU per reply (more than the
    rest of the router); the checked validator is kept per process, keyed by the schema's
    canonical JSON so a schema edited in place is a new entry, never a stale one.
    Raises jsonschema.ValidationError (or SchemaError for a broken schema).
    """
    _validator_for(json.dumps(schema, sort_keys=True)).validate(instance)


def _validated(text: str, schema: dict[str, Any]) -> dict[str, Any]:
    try:
        payload = json.loads(text)
        schema_validate(payload, schema)
    except (ValueError, jsonschema.ValidationError) as exc:
        raise InvalidOutput(type(exc).__name__) from None
    if not isinstance(payload, dict):
        raise InvalidOutput("not an object")
    return payload


def reply_text_of(payload: dict[str, Any]) -> str:
    for name in ("reply", "text", "answer", "message", "response"):
        value = payload.get(name)
        if isinstance(value, str):
            return value
    return ""


_REPLY_FIELDS = ("reply", "text", "answer", "message", "response")
_LANGUAGE_FIELDS = ("language", "lang", "language_code")
_SOURCE_FIELDS = ("sources", "refs", "citations", "source_refs")


def _types(schema: dict[str, Any]) -> list[Any]:
    kind = schema.get("type")
    return kind if isinstance(kind, list) else [kind]


def fill_schema(
    schema: dict[str, Any],
    *,
    text: str,
    handoff: bool,
    language: str = "",
    sources: list[str] | None = None,
) -> Any:
    """A value for ``schema`` carrying the local responder's answer: the reply text in the
    reply-like string field, the hand-off flag in hand-off-like booleans, the language and the
    quoted passages' refs where asked for, and nothing invented elsewhere (null where allowed,
    else the type's empty value — lead fields stay empty)."""
    kinds = _types(schema)
    if "object" in kinds:
        result: dict[str, Any] = {}
        for name, sub in (schema.get("properties") or {}).items():
            sub_kinds = _types(sub)
            if name in _REPLY_FIELDS and "string" in sub_kinds:
                result[name] = text
            elif ("handoff" in name or "human" in name) and "boolean" in sub_kinds:
                result[name] = handoff
            elif name in _LANGUAGE_FIELDS and "string" in sub_kinds and language:
                result[name] = language
            elif name in _SOURCE_FIELDS and "array" in sub_kinds:
                result[name] = list(sources or [])
            else:
                result[name] = fill_schema(
                    sub, text=text, handoff=handoff, language=language, sources=sources
                )
        return result
    if "null" in kinds:
        return None
    if "array" in kinds:
        return []
    if "boolean" in kinds:
        return False
    if "integer" in kinds or "number" in kinds:
        return 0
    if "string" in kinds:
        enum = schema.get("enum")
        return enum[0] if enum else ""
    return None


def _estimate_tokens(*texts: str) -> int:
    return sum(max(1, len(t) // 4) for t in texts if t)


def _local(request: ChatRequest) -> tuple[str, dict[str, Any] | None, int, int]:
    questions = [m.text for m in request.messages if m.role == "user"]
    answer = local_responder.answer(
        question=questions[-1] if questions else "",
        earlier_question=questions[-2] if len(questions) > 1 else "",
        passages=[p.text for p in request.context],
        language_hint=request.language_hint,
    )
    payload = None
    if request.response_schema is not None:
        candidate = fill_schema(
            request.response_schema,
            text=answer.text,
            handoff=answer.handoff,
            language=answer.language,
            sources=[request.context[i].ref for i in answer.passages_used],
        )
        try:
            schema_validate(candidate, request.response_schema)
            payload = candidate if isinstance(candidate, dict) else None
        except jsonschema.ValidationError:
            logger.warning("local responder could not fill the response schema")
    tokens_in = _estimate_tokens(request.system, *(p.text for p in request.context), *questions)
    return answer.text, payload, tokens_in, _estimate_tokens(answer.text)


def _budget_route(
    route: list[tuple[RouteEntry, Credentials]],
) -> tuple[list[tuple[RouteEntry, Credentials]], str]:
    limit = budget_limit_usd()
    if limit is None:
        return route, ""
    spent = month_spend_for_budget(limit)
    if spent < limit:
        return route, ""
    local = route[-1]
    if settings.AI_OVER_BUDGET_ROUTE == "cheapest" and len(route) > 1:
        models = cheaper_first([entry.model for entry, _ in route[:-1]])
        cheapest = next(item for item in route if item[0].model == models[0])
        note = f"monthly budget {limit} USD reached ({spent:.4f} spent): cheapest model"
        return [cheapest, local], note
    note = f"monthly budget {limit} USD reached ({spent:.4f} spent): local responder"
    return [local], note


def _vendor_reply(
    provider: ChatProvider, call: ProviderCall, credentials: Credentials, scope: str
) -> tuple[ProviderReply, dict[str, Any] | None, int, int, int]:
    """(reply, payload, tokens_in, tokens_out, attempts) for one route entry."""
    tokens_in = tokens_out = attempts = 0

    def once(this_call: ProviderCall) -> ProviderReply:
        nonlocal tokens_in, tokens_out, attempts
        reply, tries = call_with_retries(
            lambda: provider.chat(this_call, credentials),
            scope=scope,
            provider=provider.name,
            model=call.model,
        )
        attempts += tries
        tokens_in += reply.tokens_in
        tokens_out += reply.tokens_out
        return reply

    reply = once(call)
    if call.response_schema is None:
        return reply, None, tokens_in, tokens_out, attempts
    for retry in (True, False):
        try:
            return (
                reply,
                _validated(reply.text, call.response_schema),
                tokens_in,
                tokens_out,
                attempts,
            )
        except InvalidOutput:
            logger.warning(
                "invalid structured output", extra={"provider": provider.name, "model": call.model}
            )
            if retry:
                reply = once(call)
    # Twice invalid: ask for plain text so the customer still gets a normal reply.
    plain = ProviderCall(
        model=call.model,
        system=call.system,
        messages=call.messages,
        response_schema=None,
        max_output_tokens=call.max_output_tokens,
        timeout_s=call.timeout_s,
    )
    reply = once(plain)
    return reply, None, tokens_in, tokens_out, attempts


def chat_complete(request: ChatRequest) -> ChatResult:
    """Answer ``request`` along its route (see the module docstring). Never raises for
    provider failures: the local responder answers last."""
    schema = current_schema()
    route, budget_note = _budget_route(resolve_route(request.route))
    failures: list[str] = []
    call = ProviderCall(
        model="",
        system=_system_with_context(request),
        messages=[(m.role, m.text) for m in request.messages],
        response_schema=request.response_schema,
        max_output_tokens=request.max_output_tokens,
        timeout_s=settings.AI_TIMEOUT_SECONDS,
    )
    for position, (entry, credentials) in enumerate(route):
        fell_back = position > 0 and bool(failures)
        started = time.perf_counter()
        base = UsageEntry(
            kind=UsageRecord.Kind.CHAT,
            purpose=request.purpose,
            provider=entry.provider,
            model=entry.model,
            agent_id=request.agent_id,
            fell_back=fell_back,
            budget_note=budget_note,
            key_source=credentials.source,
        )
        if entry.provider == "local":
            text, payload, tokens_in, tokens_out = _local(request)
            base.tokens_in, base.tokens_out = tokens_in, tokens_out
            base.latency_ms = int((time.perf_counter() - started) * 1000)
            base.error = "; ".join(failures)
            record = usage_record_create(entry=base)
            return ChatResult(
                text=text,
                payload=payload,
                provider="local",
                model=entry.model,
                tokens_in=tokens_in,
                tokens_out=tokens_out,
                latency_ms=base.latency_ms,
                finish_reason="stop",
                fell_back=fell_back,
                usage_id=record.pk if record else None,
            )
        scope = breaker.scope_for(credentials.source, schema)
        if breaker.is_open(scope=scope, provider=entry.provider, model=entry.model):
            failures.append(f"{entry}: skipped (circuit open)")
            continue
        provider = _vendor(entry.provider)
        try:
            reply, payload, tokens_in, tokens_out, attempts = _vendor_reply(
                provider,
                ProviderCall(**{**call.__dict__, "model": entry.model}),
                credentials,
                scope,
            )
        except AttemptsExhausted as exc:
            failures.append(f"{entry}: {exc.error}")
            base.success = False
            base.error = str(exc.error)
            base.attempts = exc.attempts
            base.latency_ms = int((time.perf_counter() - started) * 1000)
            usage_record_create(entry=base)
            continue
        except ProviderError as exc:  # raised outside the retry loop: treat as exhausted
            failures.append(f"{entry}: {exc}")
            continue
        base.tokens_in, base.tokens_out, base.attempts = tokens_in, tokens_out, attempts
        base.latency_ms = int((time.perf_counter() - started) * 1000)
        base.error = "; ".join(failures)
        record = usage_record_create(entry=base)
        text = reply_text_of(payload) if payload is not None else reply.text
        return ChatResult(
            text=text.strip(),
            payload=payload,
            provider=entry.provider,
            model=entry.model,
            tokens_in=tokens_in,
            tokens_out=tokens_out,
            latency_ms=base.latency_ms,
            finish_reason=reply.finish_reason,
            fell_back=fell_back,
            usage_id=record.pk if record else None,
        )
    raise AssertionError("a route always ends with the local responder")  # pragma: no cover


__all__ = [
    "REPLY_SCHEMA",
    "ChatMessage",
    "ChatRequest",
    "ChatResult",
    "ContextPassage",
    "chat_complete",
]
