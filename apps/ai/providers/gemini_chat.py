"""Google Gemini through ``google-genai`` (the maintained successor of the deprecated
``google-generativeai``)."""

from __future__ import annotations

import threading
from typing import Any

from google import genai
from google.genai import errors as genai_errors
from google.genai import types

from ..errors import ProviderError
from .base import Credentials, ProviderCall, ProviderReply

_clients: dict[tuple[str, str | None, float], genai.Client] = {}
_lock = threading.Lock()

_FINISH = {"STOP": "stop", "MAX_TOKENS": "length", "SAFETY": "content_filter"}


def client_for(credentials: Credentials, timeout_s: float) -> genai.Client:
    key = (credentials.api_key or "", credentials.base_url, timeout_s)
    client = _clients.get(key)
    if client is None:
        with _lock:
            client = _clients.get(key)
            if client is None:
                options = types.HttpOptions(
                    base_url=credentials.base_url, timeout=int(timeout_s * 1000)
                )
                client = genai.Client(api_key=key[0], http_options=options)
                _clients[key] = client
    return client


def translate_error(exc: Exception) -> ProviderError:
    if isinstance(exc, genai_errors.APIError):
        status = int(exc.code or 0)
        transient = status == 429 or status >= 500
        return ProviderError(f"HTTP {status}", transient=transient, status=status)
    name = type(exc).__name__.lower()
    if "timeout" in name:
        return ProviderError("timeout", transient=True)
    if any(word in name for word in ("connect", "network", "transport", "protocol", "read")):
        return ProviderError("connection error", transient=True)
    return ProviderError(type(exc).__name__, transient=False)


class GeminiProvider:
    name = "gemini"

    def chat(self, call: ProviderCall, credentials: Credentials) -> ProviderReply:
        contents = [
            types.Content(
                role="model" if role == "assistant" else "user", parts=[types.Part(text=text)]
            )
            for role, text in call.messages
        ]
        config: dict[str, Any] = {
            "system_instruction": call.system,
            "max_output_tokens": call.max_output_tokens,
            # EVA passes no tools; turning AFC off also keeps the SDK from logging about it.
            "automatic_function_calling": types.AutomaticFunctionCallingConfig(disable=True),
        }
        if call.response_schema is not None:
            config["response_mime_type"] = "application/json"
            config["response_json_schema"] = call.response_schema
        try:
            response = client_for(credentials, call.timeout_s).models.generate_content(
                model=call.model, contents=contents, config=types.GenerateContentConfig(**config)
            )
        except Exception as exc:
            raise translate_error(exc) from None
        candidates = response.candidates or []
        if not candidates:
            raise ProviderError("no candidates", transient=True)
        parts = candidates[0].content.parts if candidates[0].content else None
        text = "".join(part.text or "" for part in parts or [] if not part.thought)
        usage = response.usage_metadata
        finish = candidates[0].finish_reason
        finish_name = finish.value if finish is not None else "STOP"
        return ProviderReply(
            text=text,
            tokens_in=(usage.prompt_token_count or 0) if usage else 0,
            tokens_out=(usage.candidates_token_count or 0) if usage else 0,
            finish_reason=_FINISH.get(finish_name, finish_name.lower()),
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
        task = "RETRIEVAL_QUERY" if kind == "query" else "RETRIEVAL_DOCUMENT"
        try:
            response = client_for(credentials, timeout_s).models.embed_content(
                model=model,
                contents=list(texts),
                config=types.EmbedContentConfig(task_type=task, output_dimensionality=dimensions),
            )
        except Exception as exc:
            raise translate_error(exc) from None
        vectors = [list(e.values or []) for e in response.embeddings or []]
        if len(vectors) != len(texts):
            raise ProviderError("embedding count mismatch", transient=True)
        # Gemini bills characters, not tokens, for embeddings and reports no usage.
        return vectors, 0


def reachable(credentials: Credentials, model: str, timeout_s: float) -> str:
    """ "ok" or a short reason; reads the model's metadata (free) rather than spending tokens."""
    try:
        client_for(credentials, timeout_s).models.get(model=model)
    except Exception as exc:
        return str(translate_error(exc))
    return "ok"
