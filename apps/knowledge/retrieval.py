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
import math
import time
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

from django.conf import settings
from django.core.cache import cache
from django.db import connection, transaction

from apps.ai.embeddings import embed_texts, embedding_model_active
from apps.knowledge.models import Chunk, Document
from eva.db import current_schema

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
    model = embedding_model_active()
    state = _documents_state(model.key, document_ids)
    if not state.any_ready:
        return []
    _reembed_if_stale(model.key)
    pool = max(limit * 4, 20)
    candidates: dict[int, _Candidate] = {}

    if state.has_vectors:
        vector = embed_texts([query], kind="query").vectors[0]
        for rank, (chunk_id, similarity) in enumerate(
            _vector_leg(vector, model, document_ids, state.not_ready, pool), start=1
        ):
            candidates.setdefault(chunk_id, _Candidate(chunk_id)).similarity = similarity
            candidates[chunk_id].vector_rank = rank

    for rank, (chunk_id, text_score, coverage) in enumerate(
        _text_leg(query, state.configs, document_ids, state.not_ready, pool), start=1
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
    # Only what a result carries: the vector (2 KB parsed into 512 floats) and the tsvector
    # would be most of the fetch.
    rows = {
        chunk.pk: chunk
        for chunk in Chunk.objects.select_related("document")
        .only("id", "document_id", "ordinal", "text", "metadata", "document__title")
        .filter(pk__in=[c.chunk_id for c in kept])
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


@dataclass(frozen=True)
class _DocumentsState:
    any_ready: bool  # a ready document in scope: else there is nothing to search
    has_vectors: bool  # a ready document in scope has chunks of the active model's vectors
    configs: list[str]  # the text-search configurations of the ready documents in scope
    not_ready: list[int]  # documents whose chunks must not be returned


def _documents_state(model_key: str, document_ids: list[int] | None) -> _DocumentsState:
    """What the searches need to know about the documents, in one round trip.

    ``not_ready``: documents being reprocessed or failed meanwhile. Passed to the searches as a
    short list instead of joining the documents table: with a join PostgreSQL prefers a hash
    join + full sort over the HNSW index scan (128 ms instead of 2 ms at 10k chunks); a plain
    filter keeps the index scan. The list is short: only documents that are not ready (a ready
    document sent back to processing keeps its old chunks until the new ones replace them, but
    they are not searched meanwhile).
    """
    scope = "AND d.id = ANY(%(scope)s)" if document_ids is not None else ""
    sql = (
        "SELECT "  # noqa: S608 - only the fixed scope clause is interpolated
        f"coalesce(array_agg(DISTINCT d.language) FILTER (WHERE d.status = %(ready)s {scope} "
        "AND d.language <> ''), '{}'), "
        f"coalesce(bool_or(d.status = %(ready)s {scope}), false), "
        "coalesce(array_agg(d.id) FILTER (WHERE d.status <> %(ready)s), '{}'), "
        "EXISTS (SELECT 1 FROM knowledge_chunk c JOIN knowledge_document d "
        f"ON d.id = c.document_id WHERE c.embedding_model = %(model)s AND d.status = %(ready)s "
        f"{scope}) "
        "FROM knowledge_document d"
    )
    params: dict[str, Any] = {"ready": Document.Status.READY.value, "model": model_key}
    if document_ids is not None:
        params["scope"] = list(document_ids)
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        languages, any_ready, not_ready, has_vectors = cursor.fetchone()
    return _DocumentsState(
        any_ready=bool(any_ready),
        has_vectors=bool(has_vectors),
        configs=sorted(languages) or ["simple"],
        not_ready=[int(pk) for pk in not_ready],
    )


def _vector_leg(
    vector: list[float],
    model: Any,
    document_ids: list[int] | None,
    not_ready: list[int],
    pool: int,
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
    params: list[Any] = [literal, model.key, model.dimensions, not_ready]
    if document_ids is not None:
        params.append(list(document_ids))
    params += [literal, pool]
    # ef_search trades latency for recall; iterative scans keep filling the result when the
    # filters (documents not ready, an agent's documents) discard index candidates.
    settings_sql = "SELECT set_config('hnsw.ef_search', %s, true), " + (
        "set_config('hnsw.iterative_scan', 'relaxed_order', true)"
    )
    if document_ids is None:
        # The planner does not price de-TOASTing 2 KB vectors, and pgvector prices HNSW by
        # ef_search: around 10k chunks it picks a scan + sort that is 5-15x slower than the
        # index (bench/knowledge_retrieval.py). A tenant-wide search always has the index.
        # With ``document_ids`` the planner stays free: for an agent limited to a few
        # documents, their chunks by the document_id index + an exact sort is the better plan.
        settings_sql += (
            ", set_config('enable_seqscan', 'off', true)"
            ", set_config('enable_bitmapscan', 'off', true)"
            ", set_config('enable_sort', 'off', true)"
        )
    with transaction.atomic(), connection.cursor() as cursor:
        # Transaction-local (SET LOCAL), all in one round trip.
        cursor.execute(settings_sql, [str(max(settings.KNOWLEDGE_HNSW_EF_SEARCH, pool))])
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


def _tsquery_sql(terms: str, joiner: str) -> str:
    # per configuration its terms joined by & (all) or | (any); configurations OR-ed
    return (
        "SELECT string_agg(grp, ' | ')::tsquery AS query FROM (SELECT '(' || "  # noqa: S608 - fixed names and joiners
        f"string_agg(DISTINCT quote_literal(lexeme), '{joiner}') || ')' AS grp "
        f"FROM {terms} GROUP BY cfg) g"
    )


# The query's terms that PostgreSQL's statistics (ANALYZE of the tsvector column: its most
# common lexemes and the share of chunks holding each) say appear in more than half of the
# chunks or in more than RANK_CAP of them. The "any" pass leaves them out when the query has
# rarer terms: OR-ing a word found in every chunk ("modelo" in a catalogue) made PostgreSQL
# build a bitmap of the whole table (19 ms at 100k chunks) only to rank an arbitrary RANK_CAP of
# them, and such a word says nothing about which chunk answers (its inverse document frequency
# is about zero). The rarer terms are the evidence; coverage still counts every term, and the
# "all" pass still requires every term. Without statistics yet (a fresh table) nothing is left
# out.
_COMMON_TERMS_SQL = (
    "SELECT e.lexeme FROM pg_stats s, "  # noqa: S608 - RANK_CAP is an int constant
    "unnest(s.most_common_elems::text::text[], s.most_common_elem_freqs) AS e(lexeme, freq) "
    "WHERE s.schemaname = current_schema() AND s.tablename = 'knowledge_chunk' "
    "AND s.attname = 'search_vector' AND e.lexeme IS NOT NULL AND (e.freq > 0.5 OR e.freq * "
    "(SELECT greatest(c.reltuples, 0) FROM pg_class c WHERE c.oid = 'knowledge_chunk'::regclass)"
    f" > {RANK_CAP})"
)


def _pass_sql(tq: str, exclude: str, scope: str, limit: str) -> str:
    """One pass: at most RANK_CAP matching chunks, the best ``limit`` of them by ts_rank."""
    candidates = (
        f"SELECT c.id, c.search_vector FROM knowledge_chunk c, {tq} "  # noqa: S608 - fixed clauses
        f"WHERE {tq}.query IS NOT NULL AND c.search_vector @@ {tq}.query "
        f"AND NOT (c.document_id = ANY(%(not_ready)s)) {exclude}{scope}LIMIT {RANK_CAP}"
    )
    return (
        f"SELECT k.id, k.search_vector, ts_rank(k.search_vector, {tq}.query, 1) AS rank "  # noqa: S608 - fixed clauses
        f"FROM ({candidates}) k, {tq} ORDER BY rank DESC, k.id LIMIT {limit}"
    )


@lru_cache(maxsize=2)
def _text_sql(*, scoped: bool) -> str:
    """The full-text leg's statement. Only these fixed clauses are interpolated; every value
    (query, configurations, documents, pool) is a parameter."""
    scope = "AND c.document_id = ANY(%(scope)s) " if scoped else ""
    top_all = _pass_sql("tq_all", "", scope, "%(pool)s")
    top_any = _pass_sql(
        "tq_any",
        "AND NOT (c.id = ANY(ARRAY(SELECT id FROM top_all))) ",
        scope,
        "%(pool)s - (SELECT count(*) FROM top_all)",
    )
    return (
        "WITH terms AS (SELECT cfg, lexeme FROM unnest(%(configs)s::text[]) AS cfg, "  # noqa: S608 - fixed clauses
        "unnest(tsvector_to_array(to_tsvector(cfg::regconfig, %(query)s))) AS lexeme), "
        f"common AS ({_COMMON_TERMS_SQL}), "
        "rare AS (SELECT * FROM terms WHERE lexeme NOT IN (SELECT lexeme FROM common)), "
        "any_terms AS (SELECT * FROM rare UNION ALL "
        "SELECT * FROM terms WHERE NOT EXISTS (SELECT 1 FROM rare)), "
        f"tq_all AS ({_tsquery_sql('terms', ' & ')}), "
        f"tq_any AS ({_tsquery_sql('any_terms', ' | ')}), "
        f"top_all AS ({top_all}), top_any AS ({top_any}), "
        "top AS (SELECT 0 AS pass, * FROM top_all UNION ALL SELECT 1 AS pass, * FROM top_any) "
        # coverage only for the top rows: per candidate it would dominate the cost
        "SELECT top.id, top.rank, (SELECT max(m.hit::float / m.total) FROM (SELECT count(*) "
        "FILTER (WHERE top.search_vector @@ quote_literal(t.lexeme)::tsquery) AS hit, "
        "count(*) AS total FROM terms t GROUP BY t.cfg) AS m) AS coverage "
        "FROM top ORDER BY top.pass, top.rank DESC, top.id"
    )


def _text_leg(
    query: str,
    configs: list[str],
    document_ids: list[int] | None,
    not_ready: list[int],
    pool: int,
) -> list[tuple[int, float, float]]:
    """Full-text candidates: chunks with *all* the query's terms first (selective, cheap), then,
    if that leaves room, chunks with *any* of them (a customer's question rarely repeats every
    word of the answer). Each comes with its ``ts_rank`` and coverage (the best share, over the
    text-search configurations, of the query's terms it contains).

    Both passes are one statement (one round trip, the query's terms parsed once); the second
    pass is limited to the room the first one left, so it is not run at all when the first
    filled the pool."""
    sql = _text_sql(scoped=document_ids is not None)
    params: dict[str, Any] = {
        "configs": configs,
        "query": query,
        "not_ready": not_ready,
        "pool": pool,
    }
    if document_ids is not None:
        params["scope"] = list(document_ids)
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return [(int(row[0]), float(row[1]), float(row[2])) for row in cursor.fetchall()]


_REEMBED_LOCAL_SECONDS = 60.0
_reembed_checked: dict[tuple[str, str], float] = {}


def _reembed_if_stale(model_key: str) -> None:
    """Documents still on an older embedding model get re-embedded in the background.

    Checked on search (cheap, throttled per tenant and model by the schema-scoped cache) so a
    model change heals itself without an operator; ``manage.py knowledge_reembed`` does the
    same on demand.
    """
    # The shared throttle is a Redis round trip; each process also remembers its own last look
    # for a minute, so a busy worker does not pay that round trip on every turn.
    local_key = (current_schema(), model_key)
    now = time.monotonic()
    if now - _reembed_checked.get(local_key, -math.inf) < _REEMBED_LOCAL_SECONDS:
        return
    _reembed_checked[local_key] = now
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
