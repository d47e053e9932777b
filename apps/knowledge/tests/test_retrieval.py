"""Hybrid retrieval: the right FAQ entry for paraphrased Spanish questions, "nothing relevant" as a
real answer, filters by document, vectors of different models never mixed, tenants apart."""

from __future__ import annotations

import pytest
from django_tenants.utils import tenant_context

from apps.ai.embeddings import embedding_model_active
from apps.knowledge.models import Chunk, Document
from apps.knowledge.retrieval import search_chunks
from apps.knowledge.services import document_ingest
from apps.knowledge.tests import files
from apps.knowledge.tests.conftest import logged_in, upload
from apps.knowledge.tests.faq import FAQ, faq_markdown

pytestmark = pytest.mark.django_db


def ingest(world, persona, tenant, name: str, data: bytes) -> int:
    body = upload(logged_in(persona), name, data).json()
    with tenant_context(tenant):
        document = document_ingest(document_id=body["id"])
        assert document is not None and document.status == "ready", document and document.error
    return int(body["id"])


@pytest.fixture
def faq(world, media) -> int:
    return ingest(world, world.owner_a, world.tenant_a, "faq.md", faq_markdown())


@pytest.mark.parametrize("analyzed", [False, True], ids=["fresh", "analyzed"])
def test_each_faq_question_finds_its_entry_in_the_top_3(world, faq, analyzed):
    """Also once PostgreSQL has statistics of the chunks: words common to most of the FAQ
    ("bicicleta") then leave the "any" full-text pass, and the right entries must still win."""
    misses = []
    with tenant_context(world.tenant_a):
        if analyzed:
            from django.db import connection

            with connection.cursor() as cursor:
                cursor.execute("ANALYZE knowledge_chunk")
        assert Chunk.objects.filter(document_id=faq).count() == len(FAQ)
        for heading, _answer, question in FAQ:
            hits = search_chunks(query=question, limit=3)
            if not any(heading in hit.section_text for hit in map(_Hit, hits)):
                misses.append((question, [hit.metadata.get("section") for hit in hits]))
    assert misses == []


class _Hit:
    def __init__(self, hit) -> None:
        self.section_text = hit.metadata.get("section", "")


def test_results_carry_citations_and_scores(world, faq):
    with tenant_context(world.tenant_a):
        hits = search_chunks(query="¿Puedo pagar con PayPal?", limit=3)
    top = hits[0]
    assert top.document_id == faq and top.document_title == "faq"
    assert (
        top.metadata["section"]
        == "Preguntas frecuentes de Bicis Mayor > ¿Qué formas de pago aceptáis?"
    )
    assert "PayPal" in top.text
    assert 0 < top.score <= 1 and top.metadata["similarity"] > 0.3
    assert [hit.score for hit in hits] == sorted((hit.score for hit in hits), reverse=True)


def test_nothing_relevant_is_a_real_answer(world, faq):
    with tenant_context(world.tenant_a):
        assert search_chunks(query="receta de paella valenciana con marisco") == []
        assert search_chunks(query="¿Quién ganó el mundial de fútbol de 2010?") == []
        assert search_chunks(query="   ") == []


def test_document_filter(world, faq, media):
    prices = ingest(world, world.owner_a, world.tenant_a, "precios.csv", files.CSV)
    with tenant_context(world.tenant_a):
        everything = search_chunks(query="precio del sillín gel", limit=3)
        assert everything[0].document_id == prices
        only_faq = search_chunks(query="precio del sillín gel", document_ids=[faq], limit=3)
        assert all(hit.document_id == faq for hit in only_faq)
        assert search_chunks(query="precio del sillín gel", document_ids=[]) == []


def test_vectors_of_another_model_are_never_compared(world, faq):
    """Chunks of another model (same dimension, so a cast would succeed) stay out of the vector
    search even when their vectors would be the nearest ones."""
    with tenant_context(world.tenant_a):
        active = embedding_model_active()
        other = Document.objects.create(
            title="otro modelo",
            kind="txt",
            size=1,
            sha256="f" * 64,
            status="ready",
            embedding_model="vendor/other@512",
            embedding_dimensions=512,
            language="simple",
        )
        query = "¿Puedo pagar con Bizum?"
        from apps.ai.embeddings import embed_texts

        nearest = embed_texts([query], kind="query").vectors[0]
        Chunk.objects.create(
            document=other,
            ordinal=0,
            text="zzz",
            embedding_model="vendor/other@512",
            embedding_dimensions=active.dimensions,
            embedding=nearest,
            search_config="simple",
        )
        hits = search_chunks(query=query, limit=10)
        assert hits and all(hit.document_id == faq for hit in hits)


def test_tenant_b_never_retrieves_tenant_a_chunks(world, faq, media):
    with tenant_context(world.tenant_b):
        assert search_chunks(query="¿Qué formas de pago aceptáis?") == []
        assert search_chunks(query="pago", document_ids=[faq]) == []
    b_doc = ingest(world, world.owner_b, world.tenant_b, "horario.html", files.HTML)
    with tenant_context(world.tenant_b):
        hits = search_chunks(query="formas de pago horario tienda", limit=10)
        assert hits and {hit.document_id for hit in hits} == {b_doc}
        assert all("PayPal" not in hit.text for hit in hits)
    # and by API
    response = logged_in(world.owner_b).post(
        "/api/v1/documents/search/",
        {"query": "¿Qué formas de pago aceptáis?"},
        content_type="application/json",
    )
    assert response.status_code == 200
    assert all(item["document_id"] == b_doc for item in response.json()["results"])
    assert "PayPal" not in response.content.decode()


@pytest.mark.parametrize(
    "query",
    [
        "precio's & (envío) | !gratis: <-> \\\\ruta\\\\ 'citado' \"doble\"",
        "*:* OR 1=1; DROP TABLE knowledge_chunk; --",
        "🚲🚲 ¿¿?? ...",
        "a" * 3000,
    ],
)
def test_odd_queries_are_just_text(world, faq, query):
    with tenant_context(world.tenant_a):
        results = search_chunks(query=query, limit=3)
        assert isinstance(results, list)
        assert Chunk.objects.filter(document_id=faq).count() == len(FAQ)


def _text_only_document(title: str, status: str, texts: list[str]) -> Document:
    """A Spanish document whose chunks carry vectors of another model: only the full-text leg
    can find them, so its passes and their order are what the results show."""
    from django.contrib.postgres.search import SearchVector

    document = Document.objects.create(
        title=title,
        kind="txt",
        size=1,
        sha256=(title * 64)[:64],
        status=status,
        embedding_model="vendor/other@512",
        embedding_dimensions=512,
        language="spanish",
    )
    for ordinal, text in enumerate(texts):
        Chunk.objects.create(
            document=document,
            ordinal=ordinal,
            text=text,
            embedding_model="vendor/other@512",
            embedding_dimensions=512,
            embedding=[1.0] + [0.0] * 511,
            search_config="spanish",
        )
    Chunk.objects.filter(document=document).update(
        search_vector=SearchVector("text", config="spanish")
    )
    return document


def test_full_text_ranks_all_terms_first_then_enough_of_them_and_skips_documents_not_ready(world):
    """One statement runs both passes: chunks with every term of the question first, then
    chunks with at least half of them; a chunk with one term in four is not relevant on text
    alone, and a document being reprocessed is never searched."""
    with tenant_context(world.tenant_a):
        catalogue = _text_only_document(
            "catalogo",
            "ready",
            [
                "El sofá Oslo tapizado en gris se entrega en tres días.",  # all four terms
                "Solo hablamos del color gris de nuestras cortinas.",  # one term of four
                "El sofá Oslo tiene garantía de cinco años.",  # two of four
            ],
        )
        _text_only_document(
            "reprocesando", "processing", ["Sofá Oslo gris: entrega inmediata y gratis."]
        )
        hits = search_chunks(query="sofá Oslo gris entrega", limit=6)
        assert [(hit.document_id, hit.metadata["ordinal"]) for hit in hits] == [
            (catalogue.pk, 0),
            (catalogue.pk, 2),
        ]
        assert [hit.metadata["text_rank"] for hit in hits] == [1, 2]
        assert all(hit.metadata["similarity"] is None for hit in hits)
    with tenant_context(world.tenant_b):
        assert search_chunks(query="sofá Oslo gris entrega", limit=6) == []


def test_a_word_in_most_chunks_does_not_crowd_out_the_rarer_words_of_the_question(world):
    """A catalogue where every chunk says "modelo": OR-ing that word used to rank an arbitrary
    2,000 of those chunks and miss the one chunk with the question's rarer words. PostgreSQL's
    statistics (ANALYZE) tell the search to leave such a word out of the "any" pass."""
    from django.contrib.postgres.search import SearchVector
    from django.db import connection

    from apps.knowledge.retrieval import RANK_CAP

    with tenant_context(world.tenant_a):
        document = _text_only_document("catalogo grande", "ready", [])
        filler = [
            Chunk(
                document=document,
                ordinal=n,
                text=f"El sofá modelo {n} cuesta {199 + n % 700} euros.",
                embedding_model="vendor/other@512",
                embedding_dimensions=512,
                embedding=[1.0] + [0.0] * 511,
                search_config="spanish",
            )
            for n in range(RANK_CAP + 100)
        ]
        Chunk.objects.bulk_create(filler, batch_size=500)
        wardrobe = Chunk.objects.create(
            document=document,
            ordinal=len(filler),
            text="El armario Oslo mide dos metros de alto.",
            embedding_model="vendor/other@512",
            embedding_dimensions=512,
            embedding=[1.0] + [0.0] * 511,
            search_config="spanish",
        )
        Chunk.objects.filter(document=document).update(
            search_vector=SearchVector("text", config="spanish")
        )
        with connection.cursor() as cursor:
            cursor.execute("ANALYZE knowledge_chunk")
        hits = search_chunks(query="¿Qué mide el armario modelo Oslo?", limit=3)
        assert [hit.chunk_id for hit in hits] == [wardrobe.pk]
    with tenant_context(world.tenant_b):
        assert search_chunks(query="¿Qué mide el armario modelo Oslo?", limit=3) == []
