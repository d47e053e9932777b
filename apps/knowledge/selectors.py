"""Reads of the knowledge base. Everything is scoped by the connection's tenant schema."""

from __future__ import annotations

from django.db.models import QuerySet, Sum

from apps.accounts.models import User
from apps.knowledge.models import Chunk, Document


def document_list() -> QuerySet[Document]:
    return Document.objects.select_related("uploaded_by").order_by("-created_at", "-id")


def document_get_for_user(*, user: User, document_id: int) -> Document | None:
    """Every member of the tenant may read its documents; writes check ``user.can_manage``."""
    if not user.is_authenticated:
        return None
    return document_list().filter(pk=document_id).first()


def document_chunks(*, document: Document) -> QuerySet[Chunk]:
    return (
        Chunk.objects.filter(document=document)
        .defer("embedding", "search_vector")
        .order_by("ordinal")
    )


def documents_busy() -> bool:
    return Document.objects.filter(
        status__in=[Document.Status.PENDING, Document.Status.PROCESSING]
    ).exists()


def storage_used_bytes() -> int:
    return int(Document.objects.aggregate(total=Sum("size"))["total"] or 0)
