"""Pieces every benchmark needs: a percentile, and chunks written fast (COPY) for retrieval."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from typing import Any


def percentile(values: list[float], p: float) -> float:
    """The value below which ``p`` percent of ``values`` lie (nearest rank)."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


def copy_chunks(document_id: int, model_key: str, rows: Iterable[tuple[int, str, Any]]) -> None:
    """Write (ordinal, text, vector) chunks of a document in the current tenant with COPY, then
    their Spanish full-text vectors: what ingestion stores, without parsing or embedding."""
    from django.db import connection
    from pgvector.psycopg import register_vector
    from psycopg.types.json import Jsonb

    with connection.cursor():
        pass  # makes django-tenants set the tenant's search_path on the connection
    raw = connection.connection
    register_vector(raw)
    now = dt.datetime.now(dt.UTC)
    columns = (
        "document_id, ordinal, text, section, metadata, embedding_model, embedding_dimensions, "
        "embedding, search_config, created_at"
    )
    with (
        raw.cursor() as cursor,
        cursor.copy(f"COPY knowledge_chunk ({columns}) FROM STDIN WITH (FORMAT BINARY)") as copy,
    ):
        types = "int8 int4 text varchar jsonb varchar int4 vector varchar timestamptz"
        copy.set_types(types.split())
        for ordinal, text, vector in rows:
            dims = len(vector)
            copy.write_row(
                [document_id, ordinal, text, "", Jsonb({}), model_key, dims, vector, "spanish", now]
            )
    with connection.cursor() as cursor:
        cursor.execute(
            "UPDATE knowledge_chunk SET search_vector = to_tsvector('spanish', text) "
            "WHERE search_vector IS NULL"
        )
