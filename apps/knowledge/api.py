"""Integrators' API for the knowledge base, under /api/v1/documents/.

Reads (list, detail, chunks, search) are open to every member of the tenant; uploads, retries
and deletes to owners and admins. A file that can be refused at once gets a 4xx with the same
readable message the dashboard shows; everything else is checked by the worker and ends in
``failed`` with its message.
"""

from __future__ import annotations

from typing import Any, cast

from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.exceptions import APIException, NotFound
from rest_framework.generics import ListAPIView
from rest_framework.parsers import FormParser, MultiPartParser
from rest_framework.permissions import IsAuthenticated
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from apps.accounts.models import User
from apps.api.permissions import CanManageTenant
from apps.knowledge.models import Chunk, Document, refusal_text
from apps.knowledge.parsing import DocumentRejectedError
from apps.knowledge.retrieval import search_chunks
from apps.knowledge.selectors import document_chunks, document_get_for_user, document_list
from apps.knowledge.services import document_delete, document_retry, document_upload

# HTTP status per refusal code: 413 for sizes, 415 for types, 400 for the rest.
_REJECTION_STATUS = {
    "too_large": status.HTTP_413_REQUEST_ENTITY_TOO_LARGE,
    "quota_exceeded": status.HTTP_413_REQUEST_ENTITY_TOO_LARGE,
    "zip_bomb": status.HTTP_413_REQUEST_ENTITY_TOO_LARGE,
    "unsupported_type": status.HTTP_415_UNSUPPORTED_MEDIA_TYPE,
    "type_mismatch": status.HTTP_415_UNSUPPORTED_MEDIA_TYPE,
}


class DocumentRefused(APIException):
    def __init__(self, rejection: DocumentRejectedError) -> None:
        self.status_code = _REJECTION_STATUS.get(rejection.code, status.HTTP_400_BAD_REQUEST)
        # In the request's language (Accept-Language); the code is the stable part.
        super().__init__(
            detail=refusal_text(rejection.template, rejection.params), code=rejection.code
        )


def _user(request: Request) -> User:
    return cast(User, request.user)


class DocumentSerializer(serializers.ModelSerializer):
    uploaded_by = serializers.EmailField(source="uploaded_by.email", read_only=True, default=None)

    class Meta:
        model = Document
        fields = [
            "id",
            "title",
            "original_name",
            "kind",
            "size",
            "sha256",
            "status",
            "progress",
            "error",
            "error_code",
            "chunk_count",
            "page_count",
            "row_count",
            "language",
            "embedding_model",
            "embedding_dimensions",
            "uploaded_by",
            "created_at",
            "updated_at",
            "processed_at",
        ]
        read_only_fields = fields


class DocumentUploadSerializer(serializers.Serializer):
    file = serializers.FileField(
        allow_empty_file=True, help_text="PDF, DOCX, XLSX, CSV, TXT, MD or HTML."
    )
    title = serializers.CharField(required=False, allow_blank=True, max_length=200)


class UploadResultSerializer(DocumentSerializer):
    duplicate = serializers.BooleanField(read_only=True)

    class Meta(DocumentSerializer.Meta):
        fields = [*DocumentSerializer.Meta.fields, "duplicate"]


class ChunkSerializer(serializers.ModelSerializer):
    class Meta:
        model = Chunk
        fields = ["id", "ordinal", "section", "text", "metadata", "embedding_model"]


class SearchRequestSerializer(serializers.Serializer):
    query = serializers.CharField(max_length=2000)
    document_ids = serializers.ListField(
        child=serializers.IntegerField(), required=False, allow_null=True
    )
    limit = serializers.IntegerField(required=False, min_value=1, max_value=50, default=6)


class SearchResultSerializer(serializers.Serializer):
    chunk_id = serializers.IntegerField()
    document_id = serializers.IntegerField()
    document_title = serializers.CharField()
    text = serializers.CharField()
    score = serializers.FloatField()
    metadata = serializers.DictField()


class DocumentListUpload(ListAPIView):
    serializer_class = DocumentSerializer
    parser_classes = [MultiPartParser, FormParser]

    def get_queryset(self):
        return document_list()

    def get_permissions(self):
        if self.request.method == "POST":
            return [CanManageTenant()]
        return [IsAuthenticated()]

    @extend_schema(
        request={"multipart/form-data": DocumentUploadSerializer},
        responses={201: UploadResultSerializer, 200: UploadResultSerializer},
    )
    def post(self, request: Request, *args: object, **kwargs: object) -> Response:
        """Upload a document. The same content again answers 200 with the existing document."""
        form = DocumentUploadSerializer(data=request.data)
        form.is_valid(raise_exception=True)
        try:
            outcome = document_upload(
                uploaded_by=_user(request),
                upload=form.validated_data["file"],
                title=form.validated_data.get("title", ""),
            )
        except DocumentRejectedError as exc:
            raise DocumentRefused(exc) from exc
        body = DocumentSerializer(outcome.document).data | {"duplicate": not outcome.created}
        return Response(
            body, status=status.HTTP_201_CREATED if outcome.created else status.HTTP_200_OK
        )


def _document(request: Request, document_id: int) -> Document:
    document = document_get_for_user(user=_user(request), document_id=document_id)
    if document is None:
        raise NotFound("No such document.")
    return document


class DocumentDetail(APIView):
    def get_permissions(self):
        if self.request.method == "DELETE":
            return [CanManageTenant()]
        return [IsAuthenticated()]

    @extend_schema(responses=DocumentSerializer)
    def get(self, request: Request, document_id: int) -> Response:
        return Response(DocumentSerializer(_document(request, document_id)).data)

    @extend_schema(responses={204: None})
    def delete(self, request: Request, document_id: int) -> Response:
        """Delete the document, its chunks and its stored file."""
        document_delete(document=_document(request, document_id))
        return Response(status=status.HTTP_204_NO_CONTENT)


class DocumentRetry(APIView):
    permission_classes = [CanManageTenant]

    @extend_schema(request=None, responses=DocumentSerializer)
    def post(self, request: Request, document_id: int) -> Response:
        """Queue the document for processing again (e.g. after fixing a temporary problem)."""
        document = _document(request, document_id)
        if document.is_busy:
            return Response(DocumentSerializer(document).data, status=status.HTTP_409_CONFLICT)
        return Response(DocumentSerializer(document_retry(document=document)).data)


class DocumentChunks(ListAPIView):
    serializer_class = ChunkSerializer

    def get_queryset(self):
        return document_chunks(document=_document(self.request, int(self.kwargs["document_id"])))


class DocumentSearch(APIView):
    """Try retrieval as the agents use it: hybrid (vector + full text), best first."""

    @extend_schema(request=SearchRequestSerializer, responses=SearchResultSerializer(many=True))
    def post(self, request: Request) -> Response:
        form = SearchRequestSerializer(data=request.data)
        form.is_valid(raise_exception=True)
        data: dict[str, Any] = form.validated_data
        results = search_chunks(
            query=data["query"], document_ids=data.get("document_ids"), limit=data["limit"]
        )
        return Response({"results": SearchResultSerializer(results, many=True).data})
