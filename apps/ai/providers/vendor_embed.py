"""Vendor embeddings (Gemini, OpenAI): wired to the routed SDK clients in apps.ai.calls."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from ..errors import EmbeddingUnavailable

if TYPE_CHECKING:
    from ..embeddings import EmbeddingModel


@dataclass
class VendorEmbedding:
    vectors: list[list[float]]
    tokens: int
    attempts: int
    key_source: str


def embed_with_vendor(model: EmbeddingModel, texts: list[str], *, kind: str) -> VendorEmbedding:
    raise EmbeddingUnavailable(f"{model.provider} embeddings are not wired yet")
