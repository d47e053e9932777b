"""Bad and hostile input: refused at upload with a 4xx where that can be told at once, otherwise
``failed`` with a message an admin understands — and nothing else is affected."""

from __future__ import annotations

import pytest
from django_tenants.utils import tenant_context

from apps.knowledge.models import Chunk, Document
from apps.knowledge.services import document_ingest
from apps.knowledge.tests import files
from apps.knowledge.tests.conftest import logged_in, stored_document, upload

pytestmark = pytest.mark.django_db

TWO_PAGES = [["Tarifas", "El plan básico cuesta 10 euros."], ["Envíos", "Tardan dos días."]]


@pytest.mark.parametrize(
    ("name", "data", "status", "code", "message"),
    [
        ("vacio.txt", b"", 400, "empty", "The file is empty."),
        ("foto.png", files.PNG, 415, "unsupported_type", "This file is a PNG image"),
        ("foto.pdf", files.PNG, 415, "unsupported_type", "This file is a PNG image"),
        ("notas.pdf", b"Solo texto, renombrado a PDF.", 415, "type_mismatch", "named like a PDF"),
        ("tabla.xlsx", files.make_docx(), 415, "type_mismatch", "named like an Excel workbook"),
        (
            "programa.docx",
            b"\x7fELF\x02\x01\x01" + b"\0" * 64,
            415,
            "unsupported_type",
            "a program",
        ),
        (
            "viejo.doc",
            b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\0" * 64,
            415,
            "unsupported_type",
            "old-style Office",
        ),
        ("bomba.docx", files.zip_bomb_docx(), 413, "zip_bomb", "looks like a zip bomb"),
        ("archivo.zip", files.plain_zip(), 415, "unsupported_type", "ZIP archive"),
    ],
    ids=lambda value: value if isinstance(value, str) and len(value) < 20 else None,
)
def test_refused_at_upload_with_a_readable_4xx(world, media, name, data, status, code, message):
    response = upload(logged_in(world.owner_a), name, data)
    assert response.status_code == status, response.content
    error = response.json()["error"]
    assert error["code"] == code and message in error["message"]
    with tenant_context(world.tenant_a):
        assert not Document.objects.exists()
    assert not list(media.rglob("*.*"))  # nothing stored


def test_file_and_tenant_size_limits(world, media, settings):
    owner = logged_in(world.owner_a)
    settings.KNOWLEDGE_MAX_FILE_BYTES = 100
    response = upload(owner, "grande.csv", files.CSV * 3)
    assert response.status_code == 413
    assert response.json()["error"]["message"].startswith("The file is 0.0 MB; the limit is")

    settings.KNOWLEDGE_MAX_FILE_BYTES = 10_000
    settings.KNOWLEDGE_MAX_TENANT_BYTES = len(files.CSV) + 50
    assert upload(owner, "a.csv", files.CSV).status_code == 201
    response = upload(owner, "b.md", files.MARKDOWN)
    assert response.status_code == 413
    assert response.json()["error"]["code"] == "quota_exceeded"
    assert "Delete documents you no longer need" in response.json()["error"]["message"]
    # Tenant B's quota is its own.
    assert upload(logged_in(world.owner_b), "a.csv", files.CSV).status_code == 201


# The worker's own guards: documents stored as-is (the upload checks bypassed) still end
# `failed` with the message, and never half-written.
@pytest.mark.parametrize(
    ("name", "kind", "data", "code", "message"),
    [
        (
            "secreto.pdf",
            "pdf",
            files.make_encrypted_pdf(TWO_PAGES),
            "encrypted",
            "password-protected",
        ),
        (
            "roto.pdf",
            "pdf",
            b"%PDF-1.7\n1 0 obj << /Type /Catalog >>\ngarbage",
            "corrupt",
            "damaged",
        ),
        ("escaneado.pdf", "pdf", files.make_pdf([[]]), "empty", "no text EVA can read"),
        ("blanco.txt", "txt", b"   \n\n\t  \n", "empty", "contains no text"),
        ("bomba.docx", "docx", files.zip_bomb_docx(), "zip_bomb", "zip bomb"),
        ("xml.docx", "docx", files.xml_bomb_docx(), "unsafe_xml", "DTD/entities"),
        ("foto.pdf", "pdf", files.PNG, "unsupported_type", "PNG image"),
        ("texto.pdf", "pdf", b"solo texto con nombre de pdf", "type_mismatch", "named like a PDF"),
        ("roto.xlsx", "xlsx", files.make_xlsx()[:900], "corrupt", "damaged"),
    ],
    ids=lambda value: value if isinstance(value, str) and len(value) < 20 else None,
)
def test_bad_documents_end_failed_with_their_message(world, media, name, kind, data, code, message):
    with tenant_context(world.tenant_a):
        document = stored_document(data, name, kind)
        result = document_ingest(document_id=document.pk)
        assert result is not None
        assert result.status == Document.Status.FAILED
        assert result.error_code == code
        assert message in result.error
        assert result.progress == 0 and result.chunk_count == 0
        assert not Chunk.objects.filter(document=document).exists()


def test_page_and_row_limits(world, media, settings):
    settings.KNOWLEDGE_MAX_PAGES = 1
    settings.KNOWLEDGE_MAX_ROWS = 5
    with tenant_context(world.tenant_a):
        pdf = document_ingest(
            document_id=stored_document(files.make_pdf(TWO_PAGES), "a.pdf", "pdf").pk
        )
        xlsx = document_ingest(
            document_id=stored_document(files.make_xlsx(10), "b.xlsx", "xlsx").pk
        )
        csv = document_ingest(document_id=stored_document(files.CSV * 3, "c.csv", "csv").pk)
    assert pdf is not None and pdf.error_code == "too_many_pages"
    assert pdf.error == "The PDF has 2 pages (limit 1). Split it into smaller files."
    assert xlsx is not None and xlsx.error_code == "too_many_rows"
    assert csv is not None and csv.error_code == "too_many_rows"
    assert "more than 5 table rows" in csv.error


def test_parsing_is_stopped_by_its_time_and_memory_limits(world, media, settings):
    with tenant_context(world.tenant_a):
        settings.KNOWLEDGE_PARSE_TIMEOUT = 0.05
        slow = document_ingest(document_id=stored_document(files.make_docx(), "a.docx", "docx").pk)
        settings.KNOWLEDGE_PARSE_TIMEOUT = 30
        settings.KNOWLEDGE_PARSE_MEMORY_BYTES = 16 * 1024 * 1024
        hungry = document_ingest(
            document_id=stored_document(files.make_xlsx(), "b.xlsx", "xlsx").pk
        )
    assert slow is not None and slow.status == "failed" and slow.error_code == "timeout"
    assert "took longer than 0.05 seconds and was stopped" in slow.error
    assert hungry is not None and hungry.status == "failed" and hungry.error_code == "memory"
    assert "needed more than 16 MB of memory" in hungry.error


def test_a_hostile_file_affects_nothing_else(world, media):
    owner = logged_in(world.owner_a)
    good = upload(owner, "tallas.md", files.MARKDOWN).json()
    with tenant_context(world.tenant_a):
        assert document_ingest(document_id=good["id"]).status == "ready"
        chunks_before = list(Chunk.objects.values_list("pk", "text"))
        bad = stored_document(files.xml_bomb_docx(), "x.docx", "docx")
        assert document_ingest(document_id=bad.pk).status == "failed"
        assert list(Chunk.objects.values_list("pk", "text")) == chunks_before
        assert Document.objects.get(pk=good["id"]).status == "ready"
        # and the next good document still goes through
        later = upload(owner, "h.html", files.HTML).json()
        assert document_ingest(document_id=later["id"]).status == "ready"
    with tenant_context(world.tenant_b):
        assert not Document.objects.exists()
