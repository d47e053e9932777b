"""Retrieval latency (p50/p99) and recall@10 of EVA's vector search against an exact scan, at 10k
and 100k chunks of 512 dimensions, on PostgreSQL + pgvector (HNSW, cosine), plus the hybrid
``search_chunks`` end to end (query embedding + vector + full text + fusion).

The vector query is EVA's own (``apps.knowledge.retrieval._vector_leg``: the per-model partial
HNSW index over ``embedding::vector(512)``, filtered to ready documents, ``hnsw.iterative_scan``);
the baseline, measured in the same run on the same rows and queries, is the exact scan (the same
SQL with index scans disabled: a sequential scan + top-k sort), which also defines recall.

Vectors are synthetic but clustered like sentence embeddings (1,000 topics, unit length), and
queries are perturbed copies of stored vectors' topics, so neighbourhoods are meaningful; uniform
random vectors would make any ANN index look worse than it is on real text.

    .venv/bin/python bench/knowledge_retrieval.py [--sizes 10000,100000] [--queries 200]
        [--ef 40,100,200] [--m 16] [--ef-construction 64]

Creates a throwaway database (``bench_eva_knowledge_retrieval``, dropped at the end).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

# bench/ is this script's own directory, first on sys.path
from _shared import copy_chunks, percentile

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "eva.settings")
os.environ.setdefault("DEBUG", "1")
os.environ.setdefault("LOG_LEVEL", "warning")
os.environ.setdefault("DATABASE_CONN_MAX_AGE", "0")
os.environ["EVA_TEST_DATABASE_NAME"] = "bench_eva_knowledge_retrieval"

DIMS = 512
TOPICS = 1000
_WORDS = """
precio envío garantía talla bicicleta eléctrica batería cuadro freno rueda pedido devolución
pago tarjeta tienda horario taller revisión casco candado sillín luz bomba cadena cambio
plazo financiación descuento estudiante regalo alquiler montaña carretera urbana plegable
"""
WORDS = _WORDS.split()


def clustered(rng, centroids, count: int):
    import numpy as np

    topics = rng.integers(0, len(centroids), size=count)
    vectors = centroids[topics] + rng.normal(0, 0.045, size=(count, DIMS)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    return vectors.astype(np.float32)


def insert(document_id: int, key: str, start: int, vectors, rng) -> None:
    rows = []
    for offset, vector in enumerate(vectors):
        words = " ".join(WORDS[i] for i in rng.integers(0, len(WORDS), size=12))
        rows.append((start + offset, f"Producto {start + offset}: {words}", vector))
    copy_chunks(document_id, key, rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="10000,100000")
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--ef", default="20,40,100", help="hnsw.ef_search values")
    parser.add_argument("--m", type=int, default=16)
    parser.add_argument("--ef-construction", type=int, default=64)
    parser.add_argument("--hybrid", type=int, default=50, help="search_chunks calls at each size")
    parser.add_argument("--keep", action="store_true", help="keep the database (investigation)")
    args = parser.parse_args()

    import django

    django.setup()
    import numpy as np
    from django.conf import settings
    from django.db import connection, transaction
    from django.test.utils import setup_databases, teardown_databases
    from django_tenants.utils import tenant_context

    from apps.accounts.services import tenant_onboard
    from apps.ai.embeddings import embed_texts, embedding_model_active
    from apps.knowledge.models import Document
    from apps.knowledge.retrieval import _text_leg, _vector_leg, search_chunks
    from apps.knowledge.services import chunk_index_ensure, vector_cast

    model = embedding_model_active()
    default_ef = settings.KNOWLEDGE_HNSW_EF_SEARCH
    assert model.dimensions == DIMS, f"the bench expects the offline 512-d model, got {model.key}"
    rng = np.random.default_rng(7)
    centroids = rng.normal(0, 1, size=(TOPICS, DIMS)).astype(np.float32)
    centroids /= np.linalg.norm(centroids, axis=1, keepdims=True)
    sizes = [int(s) for s in args.sizes.split(",")]
    efs = [int(e) for e in args.ef.split(",")]
    old = setup_databases(verbosity=0, interactive=False)
    try:
        tenant = tenant_onboard(
            slug="bench", name="Bench", owner_email="owner@bench.test", owner_password=None
        ).tenant
        with tenant_context(tenant):
            document = Document.objects.create(
                title="bench",
                kind="txt",
                size=1,
                sha256="0" * 64,
                status="ready",
                embedding_model=model.key,
                embedding_dimensions=DIMS,
                language="spanish",
            )
            cast, _ops = vector_cast(model)
            print(
                f"pgvector HNSW (cosine) m={args.m} ef_construction={args.ef_construction}; "
                f"{DIMS}-d; {args.queries} queries; top-10; cores={os.cpu_count()}\n"
            )
            print(f"{'chunks':>7} {'method':<22} {'p50 ms':>7} {'p99 ms':>7} {'recall@10':>9}")
            stored = 0
            for size in sizes:
                index = chunk_index_ensure(model=model)
                with connection.cursor() as cursor:
                    cursor.execute(f"DROP INDEX IF EXISTS {index}")
                insert(
                    document.pk, model.key, stored, clustered(rng, centroids, size - stored), rng
                )
                stored = size
                started = time.perf_counter()
                with connection.cursor() as cursor:
                    cursor.execute("SET maintenance_work_mem = '1GB'")
                    cursor.execute(
                        f"CREATE INDEX {index} ON knowledge_chunk USING hnsw "
                        f"((embedding::{cast}) vector_cosine_ops) WITH (m = {args.m}, "
                        f"ef_construction = {args.ef_construction}) "
                        "WHERE embedding_model = %s AND embedding_dimensions = %s",
                        [model.key, DIMS],
                    )
                    cursor.execute("ANALYZE knowledge_chunk")
                build_s = time.perf_counter() - started
                queries = clustered(rng, centroids, args.queries)

                exact_ids, exact_ms = [], []
                for query in queries:
                    t = time.perf_counter()
                    with transaction.atomic(), connection.cursor() as cursor:
                        cursor.execute("SET LOCAL enable_indexscan = off")
                        cursor.execute("SET LOCAL enable_bitmapscan = off")
                        literal = "[" + ",".join(f"{x:.7g}" for x in query) + "]"
                        cursor.execute(
                            f"SELECT c.id FROM knowledge_chunk c WHERE c.embedding_model = %s "  # noqa: S608
                            f"AND c.embedding_dimensions = %s AND NOT (c.document_id = ANY(%s)) "
                            f"ORDER BY (c.embedding::{cast}) <=> %s::{cast} LIMIT 10",
                            [model.key, DIMS, [], literal],
                        )
                        exact_ids.append({row[0] for row in cursor.fetchall()})
                    exact_ms.append((time.perf_counter() - t) * 1000)
                print(
                    f"{size:>7} {'exact scan (baseline)':<22} {statistics.median(exact_ms):7.1f} "
                    f"{percentile(exact_ms, 99):7.1f} {1.0:9.3f}"
                )
                for ef in efs:
                    settings.KNOWLEDGE_HNSW_EF_SEARCH = ef
                    latencies, recalls = [], []
                    for query, truth in zip(queries, exact_ids, strict=True):
                        vector = [float(x) for x in query]
                        t = time.perf_counter()
                        # pool=10: the leg's own LIMIT; ef_search = max(setting, pool)
                        found = _vector_leg(vector, model, None, [], 10)
                        latencies.append((time.perf_counter() - t) * 1000)
                        recalls.append(len({cid for cid, _ in found} & truth) / 10)
                    label = f"HNSW ef_search={ef}"
                    print(
                        f"{size:>7} {label:<22} {statistics.median(latencies):7.1f} "
                        f"{percentile(latencies, 99):7.1f} {statistics.mean(recalls):9.3f}"
                    )
                with connection.cursor() as cursor:
                    cursor.execute(
                        "EXPLAIN "  # noqa: S608 - the cast is built from an int
                        f"SELECT id FROM knowledge_chunk c WHERE c.embedding_model = %s AND "
                        f"c.embedding_dimensions = %s AND NOT (c.document_id = ANY(%s)) "
                        f"ORDER BY (c.embedding::{cast}) <=> %s::{cast} LIMIT 10",
                        [model.key, DIMS, [], "[" + ",".join(["0.01"] * DIMS) + "]"],
                    )
                    plan = " / ".join(row[0].strip() for row in cursor.fetchall()[:2])
                settings.KNOWLEDGE_HNSW_EF_SEARCH = default_ef
                search_chunks(query="calentamiento", limit=6)  # loads the embedding model
                embed_ms, text_ms = [], []
                for n in range(args.hybrid):
                    question = (
                        f"¿precio de la {WORDS[n % len(WORDS)]} {WORDS[(n * 7) % len(WORDS)]}?"
                    )
                    t = time.perf_counter()
                    embed_texts([question], kind="query")
                    embed_ms.append((time.perf_counter() - t) * 1000)
                    t = time.perf_counter()
                    _text_leg(question, ["spanish"], None, [], 24)
                    text_ms.append((time.perf_counter() - t) * 1000)
                for label, values in (("query embedding", embed_ms), ("full-text leg", text_ms)):
                    print(
                        f"{size:>7} {label:<22} {statistics.median(values):7.1f} "
                        f"{percentile(values, 99):7.1f} {'-':>9}"
                    )
                hybrid_ms = []
                for n in range(args.hybrid):
                    question = (
                        f"¿precio de la {WORDS[n % len(WORDS)]} {WORDS[(n * 7) % len(WORDS)]}?"
                    )
                    t = time.perf_counter()
                    search_chunks(query=question, limit=6)
                    hybrid_ms.append((time.perf_counter() - t) * 1000)
                print(
                    f"{size:>7} {'search_chunks (hybrid)':<22} {statistics.median(hybrid_ms):7.1f} "
                    f"{percentile(hybrid_ms, 99):7.1f} {'-':>9}"
                )
                print(f"{'':>7} index build {build_s:.1f}s; plan: {plan[:150]}\n")
    finally:
        if not args.keep:
            teardown_databases(old, verbosity=0)


if __name__ == "__main__":
    main()
