"""Dashboard pages of the knowledge base (/knowledge/): upload, live status, chunks, search."""

from __future__ import annotations

import logging

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import FileResponse, Http404, HttpRequest, HttpResponse
from django.http.response import HttpResponseBase
from django.shortcuts import redirect, render
from django.utils.translation import gettext as _
from django.views.decorators.http import require_POST

from apps.accounts.models import User
from apps.knowledge.models import Document, refusal_text
from apps.knowledge.parsing import DocumentRejectedError
from apps.knowledge.retrieval import search_chunks
from apps.knowledge.selectors import (
    document_chunks,
    document_get_for_user,
    document_list,
    documents_busy,
    storage_used_bytes,
)
from apps.knowledge.services import document_delete, document_retry, document_upload
from eva.media import STORAGE_ERRORS, served, unavailable_response

CHUNK_PREVIEW = 50
logger = logging.getLogger(__name__)


def _user(request: HttpRequest) -> User:
    return request.user  # type: ignore[return-value]


def _require_manager(request: HttpRequest) -> None:
    if not _user(request).can_manage:
        raise PermissionDenied(_("Only owners and admins manage the knowledge base."))


def _document(request: HttpRequest, document_id: int) -> Document:
    document = document_get_for_user(user=_user(request), document_id=document_id)
    if document is None:
        raise Http404
    return document


def _list_context(request: HttpRequest) -> dict[str, object]:
    query = request.GET.get("q", "").strip()
    return {
        "documents": document_list(),
        "busy": documents_busy(),
        "query": query,
        "results": search_chunks(query=query, limit=8) if query else None,
        "used_bytes": storage_used_bytes(),
    }


@login_required
def document_list_view(request: HttpRequest) -> HttpResponse:
    if request.method == "POST":
        _require_manager(request)
        uploads = request.FILES.getlist("files")
        if not uploads:
            messages.error(request, _("Choose or drop at least one file."))
        accepted = 0
        for upload in uploads:
            try:
                outcome = document_upload(uploaded_by=_user(request), upload=upload)
            except DocumentRejectedError as exc:
                refusal = refusal_text(exc.template, exc.params)
                messages.error(request, f"{upload.name}: {refusal}")
                continue
            accepted += 1
            if outcome.created:
                messages.success(
                    request, _("%(name)s uploaded; processing…") % {"name": upload.name}
                )
            else:
                messages.info(
                    request,
                    _("%(name)s is already in the knowledge base as “%(title)s”.")
                    % {"name": upload.name, "title": outcome.document.title},
                )
        if not accepted:
            # Nothing was taken: answer 400 with the reasons on the page itself.
            return render(request, "knowledge/list.html", _list_context(request), status=400)
        # Post/redirect/get: a reload must not upload the files again.
        return redirect("knowledge:list")
    return render(request, "knowledge/list.html", _list_context(request))


@login_required
def document_rows_view(request: HttpRequest) -> HttpResponse:
    """The table body, polled by HTMX while a document is pending or processing."""
    context = {"documents": document_list(), "busy": documents_busy()}
    return render(request, "knowledge/_rows.html", context)


@login_required
def document_detail_view(request: HttpRequest, document_id: int) -> HttpResponse:
    document = _document(request, document_id)
    chunks = document_chunks(document=document)
    context = {"document": document, "chunks": chunks[:CHUNK_PREVIEW], "preview": CHUNK_PREVIEW}
    return render(request, "knowledge/detail.html", context)


@login_required
def document_file_view(request: HttpRequest, document_id: int) -> HttpResponseBase:
    """The uploaded file as it was stored, as a download (never shown as a page)."""
    document = _document(request, document_id)
    try:
        stored = document.file.open("rb")
    except (ValueError, FileNotFoundError) as exc:  # ValueError: no file attached
        raise Http404(_("This file is not stored (any more).")) from exc
    except STORAGE_ERRORS:
        logger.exception("media storage unavailable", extra={"document_id": document_id})
        return unavailable_response()
    response = FileResponse(
        stored,
        as_attachment=True,
        filename=document.original_name or document.file.name.rsplit("/", 1)[-1],
        content_type="application/octet-stream",
    )
    return served(response)


@login_required
def document_status_view(request: HttpRequest, document_id: int) -> HttpResponse:
    """The status panel of one document, polled by HTMX while it is busy."""
    document = _document(request, document_id)
    response = render(request, "knowledge/_status.html", {"document": document})
    if not document.is_busy and request.GET.get("was_busy"):
        # The work just finished: reload the page so the chunk preview appears.
        response["HX-Refresh"] = "true"
    return response


@login_required
@require_POST
def document_retry_view(request: HttpRequest, document_id: int) -> HttpResponse:
    _require_manager(request)
    document = _document(request, document_id)
    if not document.is_busy:
        document_retry(document=document)
        messages.info(request, _("“%(title)s” is queued again.") % {"title": document.title})
    return redirect("knowledge:detail", document_id=document.pk)


@login_required
@require_POST
def document_delete_view(request: HttpRequest, document_id: int) -> HttpResponse:
    _require_manager(request)
    document = _document(request, document_id)
    title = document.title
    document_delete(document=document)
    if request.htmx:  # type: ignore[attr-defined]
        return HttpResponse("")  # the row swaps itself out
    messages.info(request, _("“%(title)s” and its chunks were deleted.") % {"title": title})
    return redirect("knowledge:list")
