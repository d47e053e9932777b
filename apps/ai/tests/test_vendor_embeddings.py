"""Vendor embeddings through the real SDKs: requested size, order, metering, no fallback."""

from __future__ import annotations

import math

import pytest
from django_tenants.utils import tenant_context

from apps.ai.embeddings import embed_texts, embedding_model_active
from apps.ai.errors import EmbeddingUnavailable
from apps.ai.models import UsageRecord

pytestmark = pytest.mark.django_db


def test_openai_embeddings_request_the_indexable_size(world, vendors, settings) -> None:
    openai_stub, _ = vendors
    settings.AI_EMBED_PROVIDER = "openai"
    settings.AI_EMBED_DIMENSIONS = 1536
    settings.AI_EMBED_BATCH_SIZE = 2
    with tenant_context(world.tenant_a):
        batch = embed_texts(["uno", "dos", "tres"], agent_id=4)
        record = UsageRecord.objects.get()
    assert batch.model.key == "openai/text-embedding-3-large@1536"
    assert batch.model.storage == "vector"
    assert [len(v) for v in batch.vectors] == [1536] * 3
    assert all(math.isclose(sum(x * x for x in v), 1.0, rel_tol=1e-6) for v in batch.vectors)
    bodies = [seen.body for seen in openai_stub.seen]
    assert [b["input"] for b in bodies] == [["uno", "dos"], ["tres"]]
    assert all(b["dimensions"] == 1536 and b["model"] == "text-embedding-3-large" for b in bodies)
    assert (record.provider, record.items, record.tokens_in, record.key_source) == (
        "openai",
        3,
        15,
        "env",
    )
    with tenant_context(world.tenant_b):
        assert not UsageRecord.objects.exists()


def test_gemini_embeddings_use_batch_embed_contents_with_task_types(world, vendors, settings):
    _, gemini_stub = vendors
    settings.AI_EMBED_PROVIDER = "auto"  # Google key set: Gemini makes the vectors
    settings.AI_EMBED_DIMENSIONS = 3072
    assert embedding_model_active().storage == "halfvec"
    with tenant_context(world.tenant_a):
        documents = embed_texts(["uno", "dos"], kind="document")
        query = embed_texts(["¿uno?"], kind="query")
    assert documents.model.key == "gemini/gemini-embedding-001@3072"
    assert [len(v) for v in documents.vectors + query.vectors] == [3072] * 3
    first, second = gemini_stub.seen
    assert first.path.endswith("/models/gemini-embedding-001:batchEmbedContents")
    assert [r["taskType"] for r in first.body["requests"]] == ["RETRIEVAL_DOCUMENT"] * 2
    assert first.body["requests"][0]["outputDimensionality"] == 3072
    assert second.body["requests"][0]["taskType"] == "RETRIEVAL_QUERY"


def test_an_unreachable_vendor_raises_and_never_mixes_in_another_model(world, vendors, settings):
    openai_stub, _ = vendors
    settings.AI_EMBED_PROVIDER = "openai"
    settings.AI_MAX_RETRIES = 1
    openai_stub.script = [{"status": 503}, {"status": 503}]
    with tenant_context(world.tenant_a), pytest.raises(EmbeddingUnavailable):
        embed_texts(["uno"])
    with tenant_context(world.tenant_a):
        record = UsageRecord.objects.get()
    assert not record.success and record.attempts == 2 and "HTTP 503" in record.error
    assert len(openai_stub.seen) == 2
