"""Hybrid retrieval over the current tenant's ready chunks: the agent engine's one entry point.

``search_chunks`` runs two searches and fuses them with reciprocal rank fusion (RRF, k=60):

1. **Vectors**: cosine distance between the query's vector and chunk vectors *of the active
   embedding model only* (the query vector comes from that model; a vector of another model is
   meaningless next to it). Served by the model's partial HNSW index (see models.py).
2. **Full text**: the query's words, stemmed in each language the tenant's documents are indexed
   in; chunks with all of them first, then chunks with any of them (a customer's question
   rarely repeats every word of the answer), ranked by ``ts_rank`` over the weighted
   section + text vector.

A chunk is relevant when its cosine similarity reaches ``KNOWLEDGE_MIN_SIMILARITY``, or when it
contains at least half of the query's (stemmed, stop-word-free) terms — which also keeps a
document whose vectors are not comparable yet (mid re-embedding) findable. Nothing relevant
returns ``[]``: "I don't know" is a real answer.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

from django.conf import settings
from django.core.cache import cache
from django.db import connection, transaction

from apps.ai.embeddings import embed_texts, embedding_model_active
from apps.knowledge.models import Chunk, Document

logger = logging.getLogger("eva.knowledge")

RRF_K = 60
# Share of the query's terms a chunk must contain to be relevant on full text alone.
_MIN_TEXT_COVERAGE = 0.5


@dataclass(frozen=True)
class RetrievedChunk:
    chunk_id: int
    document_id: int
    document_title: str
    text: str
    score: float
    metadata: dict[str, Any] = field(default_factory=dict)


@dataclass
class _Candidate:
    chunk_id: int
    similarity: float | None = None
    vector_rank: int | None = None
    text_rank: int | None = None
    text_score: float = 0.0
    coverage: float = 0.0


def search_chunks(
    *,
    query: str,
    document_ids: list[int] | None = None,
    limit: int = 6,
    min_similarity: float | None = None,
) -> list[RetrievedChunk]:
    """Top ``limit`` chunks for ``query`` in the current tenant, best first.

    ``document_ids`` restricts the search to those documents (e.g. the ones an agent may use;
    an empty list means none). Each result carries its document, fused score (1.0 = ranked
    first by both searches) and metadata (page/sheet/section/rows for citations, plus the
    ``similarity`` and ``text_rank`` behind the score).
    """
    query = " ".join(query.split())[:2000]
    if not query or limit <= 0 or (document_ids is not None and not document_ids):
        return []
    threshold = settings.KNOWLEDGE_MIN_SIMILARITY if min_similarity is None else min_similarity
    ready = Document.objects.filter(status=Document.Status.READY)
    if document_ids is not None:
        ready = ready.filter(pk__in=document_ids)
    configs = sorted(set(ready.values_list("language", flat=True)) - {""}) or ["simple"]
    if not ready.exists():
        return []
    model = embedding_model_active()
    _reembed_if_stale(model.key)
    pool = max(limit * 4, 20)
    candidates: dict[int, _Candidate] = {}

    if Chunk.objects.filter(embedding_model=model.key, document__in=ready).exists():
        vector = embed_texts([query], kind="query").vectors[0]
        for rank, (chunk_id, similarity) in enumerate(
            _vector_leg(vector, model, document_ids, pool), start=1
        ):
            candidates.setdefault(chunk_id, _Candidate(chunk_id)).similarity = similarity
            candidates[chunk_id].vector_rank = rank

    for rank, (chunk_id, text_score, coverage) in enumerate(
        _text_leg(query, configs, document_ids, pool), start=1
    ):
        candidate = candidates.setdefault(chunk_id, _Candidate(chunk_id))
        candidate.text_rank, candidate.text_score, candidate.coverage = rank, text_score, coverage

    def relevant(candidate: _Candidate) -> bool:
        # Either leg can vouch for a chunk: close in meaning, or sharing most of the query's
        # words (exact product names and codes in a long price list embed poorly).
        close = candidate.similarity is not None and candidate.similarity >= threshold
        return close or candidate.coverage >= _MIN_TEXT_COVERAGE

    def fused(candidate: _Candidate) -> float:
        score = 0.0
        for rank in (candidate.vector_rank, candidate.text_rank):
            if rank is not None:
                score += 1.0 / (RRF_K + rank)
        return score

    kept = sorted((c for c in candidates.values() if relevant(c)), key=fused, reverse=True)[:limit]
    rows = {
        chunk.pk: chunk
        for chunk in Chunk.objects.select_related("document").filter(
            pk__in=[c.chunk_id for c in kept]
        )
    }
    best = 2.0 / (RRF_K + 1)
    results = []
    for candidate in kept:
        chunk = rows.get(candidate.chunk_id)
        if chunk is None:  # deleted between the searches and now
            continue
        metadata = dict(chunk.metadata) | {
            "similarity": None if candidate.similarity is None else round(candidate.similarity, 4),
            "text_rank": candidate.text_rank,
            "ordinal": chunk.ordinal,
        }
        results.append(
            RetrievedChunk(
                chunk_id=chunk.pk,
                document_id=chunk.document_id,
                document_title=chunk.document.title,
                text=chunk.text,
                score=round(fused(candidate) / best, 4),
                metadata=metadata,
            )
        )
    return results


def _not_ready_ids() -> list[int]:
    """Documents whose chunks must not be returned (being reprocessed, failed meanwhile).

    Passed to the searches as a short list instead of joining the documents table: with a join
    PostgreSQL prefers a hash join + full sort over the HNSW index scan (128 ms instead of 2 ms
    at 10k chunks); a plain filter keeps the index scan. The list is short: only documents
    that are not ready (a ready document sent back to processing keeps its old chunks until
    the new ones replace them, but they are not searched meanwhile).
    """
    return list(Document.objects.exclude(status=Document.Status.READY).values_list("pk", flat=True))


def _vector_leg(
    vector: list[float], model: Any, document_ids: list[int] | None, pool: int
) -> list[tuple[int, float]]:
    from apps.knowledge.services import vector_cast

    cast, _ops = vector_cast(model)
    literal = "[" + ",".join(repr(float(x)) for x in vector) + "]"
    scope = "AND c.document_id = ANY(%s) " if document_ids is not None else ""
    sql = (
        f"SELECT c.id, (c.embedding::{cast}) <=> %s::{cast} AS distance "  # noqa: S608 - cast is built from an int
        "FROM knowledge_chunk c "
        "WHERE c.embedding_model = %s AND c.embedding_dimensions = %s "
        "AND NOT (c.document_id = ANY(%s)) "
        f"{scope}ORDER BY (c.embedding::{cast}) <=> %s::{cast} LIMIT %s"
    )
    params: list[Any] = [literal, model.key, model.dimensions, _not_ready_ids()]
    if document_ids is not None:
        params.append(list(document_ids))
    params += [literal, pool]
    with transaction.atomic(), connection.cursor() as cursor:
        # ef_search trades latency for recall; iterative scans keep filling the result when
        # the filters (documents not ready, an agent's documents) discard index candidates.
        cursor.execute(
            "SET LOCAL hnsw.ef_search = %s", [max(settings.KNOWLEDGE_HNSW_EF_SEARCH, pool)]
        )
        cursor.execute("SET LOCAL hnsw.iterative_scan = relaxed_order")
        if document_ids is None:
            # The planner does not price de-TOASTing 2 KB vectors, and pgvector prices HNSW by
            # ef_search: around 10k chunks it picks a scan + sort that is 5-15x slower than the
            # index (bench/knowledge_retrieval.py). A tenant-wide search always has the index.
            # With ``document_ids`` the planner stays free: for an agent limited to a few
            # documents, their chunks by the document_id index + an exact sort is the better plan.
            cursor.execute("SET LOCAL enable_seqscan = off")
            cursor.execute("SET LOCAL enable_bitmapscan = off")
            cursor.execute("SET LOCAL enable_sort = off")
        cursor.execute(sql, params)
        rows = cursor.fetchall()
    # relaxed_order may return neighbours slightly out of order.
    return sorted(
        ((int(chunk_id), 1.0 - float(distance)) for chunk_id, distance in rows),
        key=lambda r: -r[1],
    )


# At most this many matching chunks are ranked per pass: a word common to most of a large
# price list ("precio") would otherwise make ts_rank run over the whole corpus (180 ms at 100k
# chunks in bench/knowledge_retrieval.py). Beyond that many, text matches are weak evidence
# anyway (the query's words are everywhere); the vector leg still sees every chunk.
RANK_CAP = 2000


def _text_leg(
    query: str, configs: list[str], document_ids: list[int] | None, pool: int
) -> list[tuple[int, float, float]]:
    """Full-text candidates: chunks with *all* the query's terms first (selective, cheap), then,
    if that leaves room, chunks with *any* of them (a customer's question rarely repeats every
    word of the answer). Each comes with its ``ts_rank`` and coverage (the best share, over the
    text-search configurations, of the query's terms it contains)."""
    not_ready = _not_ready_ids()
    rows = _text_query(query, configs, document_ids, not_ready, [], pool, mode="all")
    if len(rows) < pool:
        seen = [row[0] for row in rows]
        rows += _text_query(
            query, configs, document_ids, not_ready, seen, pool - len(rows), mode="any"
        )
    return rows


def _text_query(
    query: str,
    configs: list[str],
    document_ids: list[int] | None,
    not_ready: list[int],
    seen: list[int],
    limit: int,
    *,
    mode: str,
) -> list[tuple[int, float, float]]:
    scope = "AND c.document_id = ANY(%s) " if document_ids is not None else ""
    # Only fixed clauses are interpolated; every value is a parameter.
    candidates = (
        "SELECT c.id, c.search_vector FROM knowledge_chunk c, tq "  # noqa: S608
        "WHERE tq.query IS NOT NULL AND c.search_vector @@ tq.query "
        f"AND NOT (c.document_id = ANY(%s)) AND NOT (c.id = ANY(%s)) {scope}"
        f"LIMIT {RANK_CAP}"
    )
    sql = (
        "WITH terms AS (SELECT cfg, lexeme FROM unnest(%s::text[]) AS cfg, "  # noqa: S608
        "unnest(tsvector_to_array(to_tsvector(cfg::regconfig, %s))) AS lexeme), "
        # per configuration its terms joined by & (all) or | (any); configurations OR-ed
        "tq AS (SELECT string_agg(grp, ' | ')::tsquery AS query FROM (SELECT '(' || "
        "string_agg(DISTINCT quote_literal(lexeme), %s) || ')' AS grp FROM terms GROUP BY cfg) g), "
        f"candidates AS ({candidates}), "
        "top AS (SELECT k.id, k.search_vector, ts_rank(k.search_vector, tq.query, 1) AS rank "
        "FROM candidates k, tq ORDER BY rank DESC, k.id LIMIT %s) "
        # coverage only for the top rows: per candidate it would dominate the cost
        "SELECT top.id, top.rank, (SELECT max(m.hit::float / m.total) FROM (SELECT count(*) "
        "FILTER (WHERE top.search_vector @@ quote_literal(t.lexeme)::tsquery) AS hit, "
        "count(*) AS total FROM terms t GROUP BY t.cfg) AS m) AS coverage "
        "FROM top ORDER BY top.rank DESC, top.id"
    )
    params: list[Any] = [configs, query, " & " if mode == "all" else " | ", not_ready, seen]
    if document_ids is not None:
        params.append(list(document_ids))
    params.append(limit)
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return [(int(row[0]), float(row[1]), float(row[2])) for row in cursor.fetchall()]


def _reembed_if_stale(model_key: str) -> None:
    """Documents still on an older embedding model get re-embedded in the background.

    Checked on search (cheap, throttled per tenant and model by the schema-scoped cache) so a
    model change heals itself without an operator; ``manage.py knowledge_reembed`` does the
    same on demand.
    """
    if not cache.add(f"knowledge:reembed-check:{model_key}", 1, timeout=600):
        return
    if (
        Document.objects.filter(status=Document.Status.READY)
        .exclude(embedding_model=model_key)
        .exists()
    ):
        from apps.knowledge.services import documents_reembed_enqueue

        queued = documents_reembed_enqueue()
        logger.info("queued re-embedding of %s documents for %s", queued, model_key)
