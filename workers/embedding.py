"""The ``embedding`` queue: document ingestion and re-embedding. Thin: ids in, one service call.

Both tasks are idempotent (a redelivered or retried run replaces the document's chunks), which
late acknowledgement requires. Retries with backoff and dead letters come from the base task; an
unreachable embedding provider is worth retrying (vectors never fall back to another model).
A file EVA refuses is not an error here: the service marks the document ``failed`` with its
message and the task succeeds.
"""

from __future__ import annotations

from apps.ai.errors import EmbeddingUnavailable
from apps.knowledge.services import document_ingest, document_reembed
from eva.celery import app
from workers.base import TenantBoundTask


@app.task(
    name="workers.embedding.ingest_document",
    base=TenantBoundTask,
    transient_exceptions=(EmbeddingUnavailable,),
)
def ingest_document(document_id: int) -> str:
    document = document_ingest(document_id=document_id)
    return "skipped" if document is None else document.status


@app.task(
    name="workers.embedding.reembed_document",
    base=TenantBoundTask,
    transient_exceptions=(EmbeddingUnavailable,),
)
def reembed_document(document_id: int) -> bool:
    return document_reembed(document_id=document_id)
