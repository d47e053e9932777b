"""Every supported format reaches ``ready`` with sensible, structure-aware chunks (real files,
real parsers in the sandbox, real offline embeddings, real pgvector)."""

from __future__ import annotations

import pytest
from django_tenants.utils import tenant_context

from apps.knowledge.models import Chunk, Document
from apps.knowledge.retrieval import search_chunks
from apps.knowledge.services import document_ingest
from apps.knowledge.tests import files
from apps.knowledge.tests.conftest import logged_in, upload

pytestmark = pytest.mark.django_db


def ingest(world, name: str, data: bytes) -> tuple[Document, list[Chunk]]:
    response = upload(logged_in(world.owner_a), name, data)
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["status"] == "pending"
    with tenant_context(world.tenant_a):
        document = document_ingest(document_id=body["id"])
        assert document is not None
        assert document.status == "ready", document.error
        assert document.progress == 100
        chunks = list(Chunk.objects.filter(document=document).order_by("ordinal"))
        assert document.chunk_count == len(chunks) > 0
        assert {chunk.embedding_model for chunk in chunks} == {document.embedding_model}
        assert all(len(chunk.embedding) == document.embedding_dimensions for chunk in chunks)
    return document, chunks


def assert_invisible_to_b(world, document_id: int, query: str) -> None:
    with tenant_context(world.tenant_b):
        assert not Document.objects.filter(pk=document_id).exists()
        assert Chunk.objects.count() == 0
        assert search_chunks(query=query) == []


def test_pdf_with_two_pages_keeps_page_numbers(world, media):
    pdf = files.make_pdf(
        [
            [
                "Tarifas 2026",
                "El plan básico cuesta 10 euros al mes.",
                "Incluye soporte por correo.",
            ],
            ["Envíos", "Enviamos a toda España en 48 horas laborables."],
        ]
    )
    document, chunks = ingest(world, "tarifas.pdf", pdf)
    assert document.kind == "pdf" and document.page_count == 2
    assert document.language == "spanish"
    pages = {chunk.metadata["page"] for chunk in chunks}
    assert pages == {1, 2}
    first = next(chunk for chunk in chunks if chunk.metadata["page"] == 1)
    assert "10 euros" in first.text and first.metadata["section"] == "Tarifas 2026"
    with tenant_context(world.tenant_a):
        hits = search_chunks(query="¿Cuánto tardan los envíos?")
    assert hits and hits[0].document_id == document.pk and hits[0].metadata["page"] == 2
    assert_invisible_to_b(world, document.pk, "envíos")


def test_docx_headings_become_sections_and_tables_keep_their_header(world, media):
    document, chunks = ingest(world, "catalogo.docx", files.make_docx())
    assert document.kind == "docx"
    sections = [chunk.section for chunk in chunks]
    assert "Catálogo Primavera > Garantía" in sections
    warranty = next(c for c in chunks if c.section == "Catálogo Primavera > Garantía")
    assert warranty.text.startswith("Catálogo Primavera > Garantía\n\n")
    assert "dos años" in warranty.text and "48 horas" not in warranty.text
    table = next(c for c in chunks if "rows" in c.metadata)
    assert "Zona: Canarias | Coste: 15 €" in table.text
    assert table.metadata["columns"] == ["Zona", "Coste"]
    assert_invisible_to_b(world, document.pk, "garantía")


def test_xlsx_price_list_rows_keep_their_header_and_sheet(world, media):
    document, chunks = ingest(world, "precios.xlsx", files.make_xlsx(rows=60))
    assert document.kind == "xlsx" and document.row_count == 65  # header + 61 rows, header + 2 rows
    sheets = {chunk.metadata["sheet"] for chunk in chunks}
    assert sheets == {"Precios", "Accesorios"}
    price_chunks = [c for c in chunks if c.metadata["sheet"] == "Precios"]
    assert len(price_chunks) >= 2  # 61 rows do not fit one chunk
    for chunk in price_chunks:
        lines = chunk.text.split("\n\n", 1)[1].splitlines()
        assert all(line.startswith("Producto: ") and "| Precio: " in line for line in lines)
        start, end = chunk.metadata["rows"]
        assert end - start + 1 == len(lines)
    with tenant_context(world.tenant_a):
        hits = search_chunks(query="precio de la bicicleta eléctrica turbo", limit=3)
    assert "Bicicleta Eléctrica Turbo | Precio: 1899" in hits[0].text
    assert hits[0].metadata["sheet"] == "Precios"
    assert_invisible_to_b(world, document.pk, "bicicleta eléctrica")


def test_csv_markdown_and_html(world, media):
    csv_doc, csv_chunks = ingest(world, "accesorios.csv", files.CSV)
    assert csv_doc.kind == "csv"
    assert "sku: A-3 | nombre: Luz trasera LED | precio: 12.50" in csv_chunks[0].text

    md_doc, md_chunks = ingest(world, "tallas.md", files.MARKDOWN)
    assert md_doc.kind == "md"
    table = next(c for c in md_chunks if "rows" in c.metadata)
    assert table.section == "Guía de tallas > Tallas de cuadro"
    assert "Altura: 165-180 cm | Talla: M" in table.text
    assert any(c.section == "Guía de tallas > Cambios" and "30 días" in c.text for c in md_chunks)

    html_doc, html_chunks = ingest(world, "horario.html", files.HTML)
    assert html_doc.kind == "html"
    text = "\n".join(c.text for c in html_chunks)
    assert "alert(1)" not in text and "color:red" not in text
    assert "permanece cerrada." in text and "- Año Nuevo" in text
    assert any(c.section == "Horario de la tienda > Festivos" for c in html_chunks)
    for document in (csv_doc, md_doc, html_doc):
        assert_invisible_to_b(world, document.pk, "tienda")


def test_plain_text_without_a_name_hint_is_detected_from_content(world, media):
    text = "Preguntas frecuentes\nNuestra tienda abre los domingos por la mañana.\n".encode()
    document, chunks = ingest(world, "notas", text)
    assert document.kind == "txt"
    assert chunks[0].section == "Preguntas frecuentes"


def test_a_document_stored_in_a_bucket_is_parsed_and_deleted_there(
    world, s3_media, django_capture_on_commit_callbacks
):
    """EVA_MEDIA_STORAGE=s3: the upload goes to the bucket under the tenant's prefix, the
    sandboxed parser reads a temporary copy, and deleting the document deletes the object."""
    from apps.knowledge.services import document_delete

    server, bucket = s3_media
    pdf = files.make_pdf([["Garantía", "Todos los zapatos tienen garantía de un año."]])
    document, chunks = ingest(world, "garantia.pdf", pdf)
    assert document.kind == "pdf" and "garantía de un año" in chunks[0].text
    objects = server.client().list_objects_v2(Bucket=bucket)["Contents"]
    assert [item["Key"] for item in objects] == [f"alpha/{document.file.name}"]
    assert objects[0]["Size"] == len(pdf)
    assert_invisible_to_b(world, document.pk, "garantía")

    with tenant_context(world.tenant_a), django_capture_on_commit_callbacks(execute=True):
        document_delete(document=document)
    assert server.client().list_objects_v2(Bucket=bucket).get("Contents", []) == []
