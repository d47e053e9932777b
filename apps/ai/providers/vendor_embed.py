"""Vendor embeddings (Gemini, OpenAI) with the same timeout, retries and breaker as chat."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

from django.conf import settings

from eva.db import current_schema

from .. import breaker
from ..calls import AttemptsExhausted, call_with_retries
from ..errors import EmbeddingUnavailable

if TYPE_CHECKING:
    from ..embeddings import EmbeddingModel


@dataclass
class VendorEmbedding:
    vectors: list[list[float]]
    tokens: int
    attempts: int
    key_source: str


def _normalised(vector: list[float]) -> list[float]:
    # Shortened (Matryoshka) vectors are not unit length; cosine and inner product then agree.
    norm = math.sqrt(sum(x * x for x in vector)) or 1.0
    return [x / norm for x in vector]


def embed_with_vendor(model: EmbeddingModel, texts: list[str], *, kind: str) -> VendorEmbedding:
    from ..routing import credentials_for

    credentials = credentials_for(model.provider)
    if credentials.source == "none":
        raise EmbeddingUnavailable(f"no key configured for {model.provider} embeddings")
    scope = breaker.scope_for(credentials.source, current_schema())
    if breaker.is_open(scope=scope, provider=model.provider, model=model.model):
        raise EmbeddingUnavailable(f"{model.provider}/{model.model}: circuit open")
    if model.provider == "openai":
        from .openai_chat import OpenAIProvider as Provider
    else:
        from .gemini_chat import GeminiProvider as Provider  # type: ignore[assignment]
    provider = Provider()
    try:
        (vectors, tokens), attempts = call_with_retries(
            lambda: provider.embed(
                model=model.model,
                texts=texts,
                dimensions=model.dimensions,
                kind=kind,
                credentials=credentials,
                timeout_s=settings.AI_TIMEOUT_SECONDS,
            ),
            scope=scope,
            provider=model.provider,
            model=model.model,
        )
    except AttemptsExhausted as exc:
        raise EmbeddingUnavailable(
            f"{model.provider}/{model.model}: {exc.error}", attempts=exc.attempts
        ) from None
    if any(len(v) != model.dimensions for v in vectors):
        raise EmbeddingUnavailable(f"{model.provider}/{model.model}: unexpected dimensions")
    return VendorEmbedding(
        vectors=[_normalised(v) for v in vectors],
        tokens=tokens,
        attempts=attempts,
        key_source=credentials.source,
    )
