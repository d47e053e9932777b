"""OpenAI and OpenAI-compatible endpoints (Ollama, vLLM, LM Studio) through the ``openai`` SDK."""

from __future__ import annotations

import threading
from typing import Any

import openai
from openai.types.chat import ChatCompletion

from ..errors import ProviderError
from .base import Credentials, ProviderCall, ProviderReply

_clients: dict[tuple[str, str | None, float], openai.OpenAI] = {}
_lock = threading.Lock()


def client_for(credentials: Credentials, timeout_s: float) -> openai.OpenAI:
    """One client per key/endpoint/timeout per process: building one costs a connection pool.

    The SDK's own retries are off: the router retries with backoff and then falls back.
    """
    key = (credentials.api_key or "unused", credentials.base_url, timeout_s)
    client = _clients.get(key)
    if client is None:
        with _lock:
            client = _clients.get(key)
            if client is None:
                client = openai.OpenAI(
                    api_key=key[0], base_url=credentials.base_url, timeout=timeout_s, max_retries=0
                )
                _clients[key] = client
    return client


def strict_compatible(schema: Any) -> bool:
    """Whether OpenAI's strict structured outputs accept ``schema``: every object closed
    (additionalProperties false) with all its properties required. Strict mode guarantees the
    shape; other schemas are sent non-strict and still validated by apps.ai."""
    if isinstance(schema, dict):
        kinds = schema.get("type")
        kinds = kinds if isinstance(kinds, list) else [kinds]
        if "object" in kinds:
            properties = schema.get("properties") or {}
            if schema.get("additionalProperties") is not False:
                return False
            if set(schema.get("required") or []) != set(properties):
                return False
        return all(strict_compatible(value) for value in schema.values())
    if isinstance(schema, list):
        return all(strict_compatible(item) for item in schema)
    return True


def translate_error(exc: Exception) -> ProviderError:
    """SDK exception -> ProviderError without any request detail (the key stays out)."""
    if isinstance(exc, openai.APITimeoutError):
        return ProviderError("timeout", transient=True)
    if isinstance(exc, openai.APIConnectionError):
        return ProviderError("connection error", transient=True)
    if isinstance(exc, openai.APIStatusError):
        status = exc.status_code
        transient = status == 429 or status >= 500
        return ProviderError(f"HTTP {status}", transient=transient, status=status)
    return ProviderError(type(exc).__name__, transient=False)


class OpenAIProvider:
    name = "openai"

    def chat(self, call: ProviderCall, credentials: Credentials) -> ProviderReply:
        messages: list[Any] = [{"role": "system", "content": call.system}]
        messages += [{"role": role, "content": text} for role, text in call.messages]
        body: dict[str, Any] = {
            "model": call.model,
            "messages": messages,
            "max_completion_tokens": call.max_output_tokens,
        }
        if call.response_schema is not None:
            body["response_format"] = {
                "type": "json_schema",
                "json_schema": {
                    "name": "reply",
                    "schema": call.response_schema,
                    "strict": strict_compatible(call.response_schema),
                },
            }
        try:
            # The SDK's own request path (same client, headers, timeout, errors and response
            # type) without ``chat.completions.create``'s walk of the params against its typed
            # definitions: for a body that is plain JSON already it changes nothing and cost
            # ~6 ms of CPU per reply (bench/agents_turn.py), more than the rest of the router.
            completion = client_for(credentials, call.timeout_s).post(
                "/chat/completions", body=body, cast_to=ChatCompletion
            )
        except openai.OpenAIError as exc:
            raise translate_error(exc) from None
        if not completion.choices:
            raise ProviderError("empty response", transient=True)
        choice = completion.choices[0]
        usage = completion.usage
        return ProviderReply(
            text=choice.message.content or "",
            tokens_in=usage.prompt_tokens if usage else 0,
            tokens_out=usage.completion_tokens if usage else 0,
            finish_reason=choice.finish_reason or "stop",
        )

    def embed(
        self,
        *,
        model: str,
        texts: list[str],
        dimensions: int,
        kind: str,
        credentials: Credentials,
        timeout_s: float,
    ) -> tuple[list[list[float]], int]:
        kwargs: dict[str, Any] = {}
        # text-embedding-3-* can shorten their vectors (Matryoshka); older models cannot.
        if model.startswith("text-embedding-3"):
            kwargs["dimensions"] = dimensions
        try:
            response = client_for(credentials, timeout_s).embeddings.create(
                model=model, input=texts, encoding_format="float", **kwargs
            )
        except openai.OpenAIError as exc:
            raise translate_error(exc) from None
        ordered = sorted(response.data, key=lambda item: item.index)
        return [list(item.embedding) for item in ordered], response.usage.prompt_tokens


def reachable(credentials: Credentials, model: str, timeout_s: float) -> str:
    """ "ok" or a short reason; lists models (free) rather than spending tokens."""
    try:
        listed = client_for(credentials, timeout_s).models.list()
    except openai.OpenAIError as exc:
        return str(translate_error(exc))
    names = {m.id for m in listed.data}
    return "ok" if not names or model in names else f"ok, but {model!r} is not listed"
