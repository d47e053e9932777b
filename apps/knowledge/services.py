"""Writes of the knowledge base: upload, ingest (parse → chunk → embed → store), retry, delete,
re-embed. Views, API views, tasks and commands all go through these functions.
"""

from __future__ import annotations

import hashlib
import logging
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import PurePath
from typing import IO, Any, BinaryIO, cast

from django.conf import settings
from django.core.files.base import File
from django.db import connection, transaction
from django.db.models import Sum
from django.utils import timezone

from apps.accounts.models import User
from apps.ai.embeddings import EmbeddingModel, embed_texts, embedding_model_active
from apps.knowledge.models import Chunk, Document
from apps.knowledge.parsing import DocumentRejectedError, gettext_noop
from apps.knowledge.parsing.chunking import ChunkDraft, chunk_blocks
from apps.knowledge.parsing.detect import BINARY_KINDS, detect_kind
from apps.knowledge.parsing.formats import ParseLimits
from apps.knowledge.parsing.guards import ArchiveLimits, check_office_archive
from apps.knowledge.parsing.language import text_search_config
from apps.knowledge.parsing.sandbox import parse_in_sandbox
from eva.db import current_schema
from eva.media import local_file

logger = logging.getLogger("eva.knowledge")

INGEST_TASK = "workers.embedding.ingest_document"
REEMBED_TASK = "workers.embedding.reembed_document"


# --- limits ------------------------------------------------------------------------------------


def archive_limits() -> ArchiveLimits:
    return ArchiveLimits(
        max_uncompressed_bytes=settings.KNOWLEDGE_MAX_UNZIPPED_BYTES,
        max_ratio=settings.KNOWLEDGE_MAX_ZIP_RATIO,
    )


def parse_limits() -> ParseLimits:
    return ParseLimits(
        max_pages=settings.KNOWLEDGE_MAX_PAGES,
        max_rows=settings.KNOWLEDGE_MAX_ROWS,
        archive=archive_limits(),
    )


def _megabytes(size: int) -> str:
    """A size in MB with one decimal, as a refusal's parameter (its template says "MB")."""
    return f"{size / (1024 * 1024):.1f}"


# --- upload -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class UploadOutcome:
    document: Document
    created: bool


def _sha256(stream: IO[bytes]) -> str:
    digest = hashlib.sha256()
    stream.seek(0)
    for block in iter(lambda: stream.read(1024 * 1024), b""):
        digest.update(block)
    stream.seek(0)
    return digest.hexdigest()


def _enqueue(task: str, document_id: int) -> None:
    from eva.celery import app

    app.send_task(task, args=[document_id])


def document_upload(*, uploaded_by: User | None, upload: File, title: str = "") -> UploadOutcome:
    """Store an uploaded file as a pending document and queue its ingestion.

    Raises ``DocumentRejectedError`` when the file can be refused at once (too big, over the
    tenant's quota, empty, not a supported type, named as a type it is not, an archive that
    would unpack to too much). The same content uploaded again returns the existing document
    (``created=False``) without storing or embedding anything twice; a failed one is retried.
    """
    size = int(upload.size or 0)
    if size > settings.KNOWLEDGE_MAX_FILE_BYTES:
        raise DocumentRejectedError(
            "too_large",
            gettext_noop("The file is %(size)s MB; the limit is %(limit)s MB per file."),
            {"size": _megabytes(size), "limit": _megabytes(settings.KNOWLEDGE_MAX_FILE_BYTES)},
        )
    name = PurePath(upload.name or "document").name
    stream = cast(BinaryIO, upload)  # Django's File proxies read/seek to the real file
    kind = detect_kind(stream, name)
    if kind in BINARY_KINDS - {"pdf"}:
        check_office_archive(stream, archive_limits(), scan_xml=False)
    sha256 = _sha256(stream)

    with transaction.atomic():
        # Serialise uploads per tenant so two parallel uploads cannot both pass the quota check
        # (and two uploads of the same file meet the unique sha256 in order).
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT pg_advisory_xact_lock(hashtext(%s))", [f"knowledge:{current_schema()}"]
            )
        existing = Document.objects.filter(sha256=sha256).first()
        if existing is not None:
            if existing.status == Document.Status.FAILED:
                document_retry(document=existing)
            return UploadOutcome(document=existing, created=False)
        used = Document.objects.aggregate(total=Sum("size"))["total"] or 0
        if used + size > settings.KNOWLEDGE_MAX_TENANT_BYTES:
            raise DocumentRejectedError(
                "quota_exceeded",
                gettext_noop(
                    "Your documents already use %(used)s MB of %(limit)s MB; this file "
                    "(%(size)s MB) does not fit. Delete documents you no longer need."
                ),
                {
                    "used": _megabytes(used),
                    "limit": _megabytes(settings.KNOWLEDGE_MAX_TENANT_BYTES),
                    "size": _megabytes(size),
                },
            )
        document = Document(
            title=(title.strip() or PurePath(name).stem or name)[:200],
            original_name=name[:255],
            kind=kind,
            size=size,
            sha256=sha256,
            uploaded_by=uploaded_by,
        )
        upload.seek(0)
        document.file.save(f"{uuid.uuid4().hex}.{kind}", upload, save=False)
        stored_name = document.file.name
        try:
            document.save()
        except Exception:
            document.file.storage.delete(stored_name)
            raise
        document_id = document.pk
        transaction.on_commit(lambda: _enqueue(INGEST_TASK, document_id))
    return UploadOutcome(document=document, created=True)


def document_retry(*, document: Document) -> Document:
    """Queue a failed (or stuck) document for ingestion again."""
    Document.objects.filter(pk=document.pk).update(
        status=Document.Status.PENDING,
        progress=0,
        error="",
        error_code="",
        updated_at=timezone.now(),
    )
    document.refresh_from_db()
    document_id = document.pk
    transaction.on_commit(lambda: _enqueue(INGEST_TASK, document_id))
    return document


@transaction.atomic
def document_delete(*, document: Document) -> None:
    """Delete the document, its chunks (cascade) and, once committed, its stored file."""
    storage, name = document.file.storage, document.file.name
    document.delete()
    if name:
        transaction.on_commit(lambda: storage.delete(name))


# --- ingestion ----------------------------------------------------------------------------------


def _set_progress(document_id: int, progress: int, **fields: Any) -> None:
    # Outside any transaction: the dashboard polls these values while the pipeline runs.
    Document.objects.filter(pk=document_id).update(
        progress=progress, updated_at=timezone.now(), **fields
    )


def _fail(document_id: int, refusal: DocumentRejectedError) -> None:
    _set_progress(
        document_id,
        0,
        status=Document.Status.FAILED,
        error=refusal.message,
        error_code=refusal.code[:40],
        error_template=refusal.template,
        error_params=refusal.params,
    )


def _claim(document_id: int) -> Document | None:
    """Move the document to ``processing``; None when it is gone or already done."""
    with transaction.atomic():
        document = Document.objects.select_for_update().filter(pk=document_id).first()
        if document is None or document.status == Document.Status.READY:
            return None
        document.status = Document.Status.PROCESSING
        document.progress = 5
        document.error = ""
        document.error_code = ""
        document.save(update_fields=["status", "progress", "error", "error_code", "updated_at"])
        return document


def document_parse(*, document: Document) -> tuple[list[ChunkDraft], str, int, int]:
    """Detect, guard and parse the stored file in the sandbox; chunk the blocks.

    Returns (chunks, text-search configuration, pages, rows). Raises ``DocumentRejectedError``.
    """
    with document.file.open("rb") as stream:
        kind = detect_kind(stream, document.original_name or document.file.name)
        if kind in ("docx", "xlsx"):
            # Cheap central-directory and DTD checks before the sandbox even starts.
            check_office_archive(stream, archive_limits())
    if kind != document.kind:
        Document.objects.filter(pk=document.pk).update(kind=kind)
    # The sandbox reads a file by path: a temporary copy when the file lives in a bucket.
    with local_file(document.file.storage, document.file.name) as path:
        result = parse_in_sandbox(
            str(path),
            kind,
            parse_limits(),
            timeout=settings.KNOWLEDGE_PARSE_TIMEOUT,
            memory_bytes=settings.KNOWLEDGE_PARSE_MEMORY_BYTES,
        )
    drafts = chunk_blocks(
        result.blocks,
        max_chars=settings.KNOWLEDGE_CHUNK_CHARS,
        overlap_chars=settings.KNOWLEDGE_CHUNK_OVERLAP,
    )
    if not drafts:
        raise DocumentRejectedError("empty", gettext_noop("The document contains no text."))
    config = text_search_config(" ".join(draft.text for draft in drafts[:200]))
    return drafts, config, result.pages, result.rows


def _embed_all(
    texts: list[str], on_progress: Callable[[int], None]
) -> tuple[list[list[float]], EmbeddingModel]:
    vectors: list[list[float]] = []
    model: EmbeddingModel | None = None
    size = settings.KNOWLEDGE_EMBED_BATCH
    for start in range(0, len(texts), size):
        batch = embed_texts(texts[start : start + size], kind="document")
        if model is not None and batch.model != model:
            # The active model changed mid-document: never store a mix; the retry starts over.
            raise RuntimeError("the embedding model changed while embedding a document")
        model = batch.model
        vectors.extend(batch.vectors)
        on_progress(len(vectors))
    return vectors, model or embedding_model_active()


def document_ingest(*, document_id: int) -> Document | None:
    """Run the whole pipeline for one document: parse → chunk → embed → store → ``ready``.

    Idempotent: a re-run (retry, redelivery after a worker died) replaces the document's chunks
    and never doubles them. A file EVA refuses ends ``failed`` with a readable message and is not
    retried; any other error marks it ``failed`` and is raised so the task retries it.
    Returns None when the document is gone or already ready.
    """
    document = _claim(document_id)
    if document is None:
        return None
    try:
        drafts, config, pages, rows = document_parse(document=document)
        _set_progress(document_id, 25, page_count=pages, row_count=rows, language=config)
        total = len(drafts)

        def on_progress(done: int) -> None:
            _set_progress(document_id, 25 + int(70 * done / total))

        vectors, model = _embed_all([draft.embedding_input for draft in drafts], on_progress)
        written = chunks_replace(
            document_id=document_id, drafts=drafts, vectors=vectors, model=model, config=config
        )
    except DocumentRejectedError as exc:
        logger.info("document %s refused: %s (%s)", document_id, exc.code, exc.message)
        _fail(document_id, exc)
        return Document.objects.filter(pk=document_id).first()
    except Exception as exc:
        _fail(
            document_id,
            DocumentRejectedError(
                "error",
                gettext_noop(
                    "Processing stopped because of a temporary problem (%(error)s). "
                    "EVA retries automatically; you can also press Process again."
                ),
                {"error": type(exc).__name__},
            ),
        )
        raise
    if written is None:
        return None
    logger.info("document %s ready: %s chunks", document_id, written.chunk_count)
    return written


def chunk_index_ensure(*, model: EmbeddingModel) -> str:
    """Create the partial HNSW (cosine) index for ``model``'s vectors in this schema, once.

    The index covers ``embedding::vector(d)`` (or ``halfvec(d)`` above 2,000 dimensions, the
    HNSW limit of ``vector``) for the rows of this model only; search uses the same expression
    and filter, which is what lets PostgreSQL use it.
    """
    name = "knowledge_chunk_hnsw_" + hashlib.sha1(model.key.encode()).hexdigest()[:12]  # noqa: S324 - a name, not security
    cast, ops = vector_cast(model)
    with connection.cursor() as cursor:
        # Look first: DDL is not allowed while the transaction holds deferred FK checks, and an
        # existing index is the common case.
        cursor.execute("SELECT to_regclass(%s) IS NOT NULL", [name])
        if cursor.fetchone()[0]:
            return name
        cursor.execute(
            f"CREATE INDEX IF NOT EXISTS {name} ON knowledge_chunk "
            f"USING hnsw ((embedding::{cast}) {ops}) "
            "WHERE embedding_model = %s AND embedding_dimensions = %s",
            [model.key, model.dimensions],
        )
    return name


def vector_cast(model: EmbeddingModel) -> tuple[str, str]:
    """The expression type and operator class the model's vectors are indexed and searched as."""
    dimensions = int(model.dimensions)
    if model.storage == "halfvec":
        return f"halfvec({dimensions})", "halfvec_cosine_ops"
    return f"vector({dimensions})", "vector_cosine_ops"


def chunks_replace(
    *,
    document_id: int,
    drafts: list[ChunkDraft],
    vectors: list[list[float]],
    model: EmbeddingModel,
    config: str,
) -> Document | None:
    """Atomically make these chunks the document's live chunks and mark it ``ready``.

    Every chunk of the document is replaced (old model or not), so a re-run never doubles
    them. Returns None when the document was deleted meanwhile.
    """
    if len(drafts) != len(vectors):
        raise ValueError("one vector per chunk is required")
    chunk_index_ensure(model=model)
    with transaction.atomic():
        document = Document.objects.select_for_update().filter(pk=document_id).first()
        if document is None:
            return None
        Chunk.objects.filter(document_id=document_id).delete()
        _insert_chunks(document_id, drafts, vectors, model, config)
        document.status = Document.Status.READY
        document.progress = 100
        document.error = ""
        document.error_code = ""
        document.chunk_count = len(drafts)
        document.embedding_model = model.key
        document.embedding_dimensions = model.dimensions
        document.language = config
        document.processed_at = timezone.now()
        document.save(
            update_fields=[
                "status",
                "progress",
                "error",
                "error_code",
                "chunk_count",
                "embedding_model",
                "embedding_dimensions",
                "language",
                "processed_at",
                "updated_at",
            ]
        )
    return document


def _insert_chunks(
    document_id: int,
    drafts: list[ChunkDraft],
    vectors: list[list[float]],
    model: EmbeddingModel,
    config: str,
) -> None:
    Chunk.objects.bulk_create(
        [
            Chunk(
                document_id=document_id,
                ordinal=ordinal,
                text=draft.text,
                section=draft.section[:500],
                metadata=draft.metadata,
                embedding_model=model.key,
                embedding_dimensions=model.dimensions,
                embedding=vector,
                search_config=config,
            )
            for ordinal, (draft, vector) in enumerate(zip(drafts, vectors, strict=True))
        ],
        batch_size=500,
    )
    # The section (heading path) weighs more than body text in full-text ranking.
    with connection.cursor() as cursor:
        cursor.execute(
            "UPDATE knowledge_chunk SET search_vector = "
            "setweight(to_tsvector(search_config::regconfig, section), 'A') || "
            "setweight(to_tsvector(search_config::regconfig, text), 'B') "
            "WHERE document_id = %s AND embedding_model = %s",
            [document_id, model.key],
        )


# --- re-embedding -------------------------------------------------------------------------------


def document_reembed(*, document_id: int) -> bool:
    """Re-embed a ready document's chunks with the active model; True when it changed.

    The chunk texts are embedded again (no re-parse: chunks do not depend on the model). The
    new chunks replace the old ones in one transaction, so until then the document keeps
    answering from its old chunks (through full text while the query vector comes from the new
    model: vectors of two models are never compared).
    """
    model = embedding_model_active()
    document = Document.objects.filter(pk=document_id, status=Document.Status.READY).first()
    if document is None or document.embedding_model == model.key:
        return False
    old_key = document.embedding_model
    old = list(
        Chunk.objects.filter(document_id=document_id, embedding_model=old_key)
        .order_by("ordinal")
        .values("text", "section", "metadata", "search_config")
    )
    drafts = [
        ChunkDraft(text=row["text"], section=row["section"], metadata=row["metadata"])
        for row in old
    ]
    config = old[0]["search_config"] if old else (document.language or "simple")
    if not drafts:
        return False
    vectors, used = _embed_all([draft.embedding_input for draft in drafts], lambda done: None)
    chunk_index_ensure(model=used)
    with transaction.atomic():
        locked = Document.objects.select_for_update().filter(pk=document_id).first()
        # The document may have been deleted or re-ingested meanwhile; then this work is moot.
        if (
            locked is None
            or locked.embedding_model != old_key
            or locked.status != Document.Status.READY
        ):
            return False
        Chunk.objects.filter(document_id=document_id).delete()
        _insert_chunks(document_id, drafts, vectors, used, config)
        locked.embedding_model = used.key
        locked.embedding_dimensions = used.dimensions
        locked.chunk_count = len(drafts)
        locked.save(
            update_fields=["embedding_model", "embedding_dimensions", "chunk_count", "updated_at"]
        )
    return True


def documents_reembed_enqueue() -> int:
    """Queue re-embedding of every ready document not on the active model; return how many."""
    key = embedding_model_active().key
    ids = list(
        Document.objects.filter(status=Document.Status.READY)
        .exclude(embedding_model=key)
        .values_list("pk", flat=True)
    )
    for document_id in ids:
        transaction.on_commit(partial(_enqueue, REEMBED_TASK, document_id))
    return len(ids)
