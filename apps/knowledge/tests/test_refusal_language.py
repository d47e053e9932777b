"""A refused document is explained in the admin's language (the dashboard is English and
Spanish); what is stored and logged stays English, and the API follows Accept-Language."""

from __future__ import annotations

import html

import pytest
from django.core.files.base import ContentFile
from django_tenants.utils import tenant_context

from apps.knowledge.models import Document
from apps.knowledge.services import document_ingest
from apps.knowledge.tests import files
from apps.knowledge.tests.conftest import logged_in, stored_document, upload

pytestmark = pytest.mark.django_db

TWO_PAGES = [["Tarifas", "El plan básico cuesta 10 euros."], ["Envíos", "Tardan dos días."]]


def page(client, url: str, language: str) -> str:
    response = client.get(url, HTTP_ACCEPT_LANGUAGE=language)
    assert response.status_code == 200
    return html.unescape(response.content.decode())


def test_a_failed_document_is_explained_in_the_dashboards_language(world, media, settings):
    settings.KNOWLEDGE_MAX_PAGES = 1
    with tenant_context(world.tenant_a):
        failed = document_ingest(
            document_id=stored_document(files.make_pdf(TWO_PAGES), "tarifas.pdf", "pdf").pk
        )
        foreign = document_ingest(document_id=stored_document(files.PNG, "foto.pdf", "pdf").pk)
    assert failed is not None and foreign is not None
    # Stored in English (the API's and the logs' words), with what translating it needs.
    assert failed.error == "The PDF has 2 pages (limit 1). Split it into smaller files."
    assert failed.error_params == {"pages": "2", "limit": "1"}
    owner = logged_in(world.owner_a)

    spanish = page(owner, f"/knowledge/{failed.pk}/", "es")
    assert "El PDF tiene 2 páginas (límite 1). Divídalo en archivos más pequeños." in spanish
    english = page(owner, f"/knowledge/{failed.pk}/", "en")
    assert "The PDF has 2 pages (limit 1). Split it into smaller files." in english
    # The phrases a refusal names are translated too.
    listing = page(owner, "/knowledge/", "es")
    assert "Este archivo es una imagen PNG, no un documento que EVA pueda leer." in listing
    assert "Suba PDF, Word (.docx), Excel (.xlsx), CSV, texto, Markdown o HTML." in listing
    assert "This file is a PNG image" in page(owner, "/knowledge/", "en")


def test_an_upload_refused_at_once_is_explained_in_the_requests_language(world, media):
    owner = logged_in(world.owner_a)
    response = owner.post(
        "/knowledge/",
        {"files": ContentFile(b"Solo texto, renombrado a PDF.", name="notas.pdf")},
        HTTP_ACCEPT_LANGUAGE="es",
        follow=True,
    )
    shown = html.unescape(response.content.decode())
    assert (
        "notas.pdf: El nombre del archivo es el de un PDF («notas.pdf») pero su contenido es "
        "texto plano." in shown
    )
    api = owner.post(
        "/api/v1/documents/",
        {"file": ContentFile(files.PNG, name="foto.png")},
        HTTP_ACCEPT_LANGUAGE="es",
    )
    assert api.status_code == 415
    error = api.json()["error"]
    assert error["code"] == "unsupported_type"
    assert error["message"].startswith("Este archivo es una imagen PNG")
    english = upload(owner, "foto.png", files.PNG).json()["error"]
    assert english["message"].startswith("This file is a PNG image")
    with tenant_context(world.tenant_a):
        assert not Document.objects.exists()


def test_numbers_in_a_refusal_are_grouped_as_the_admins_locale_groups_them(world, media, settings):
    settings.KNOWLEDGE_MAX_ROWS = 1000
    with tenant_context(world.tenant_a):
        failed = document_ingest(
            document_id=stored_document(files.make_xlsx(1200), "precios.xlsx", "xlsx").pk
        )
    assert failed is not None and failed.error_code == "too_many_rows"
    assert failed.error.startswith("The document has more than 1,000 table rows.")
    owner = logged_in(world.owner_a)
    # Spanish groups thousands with a (non-breaking) space.
    assert "más de 1\xa0000 filas de tabla" in page(owner, f"/knowledge/{failed.pk}/", "es")
    assert "more than 1,000 table rows" in page(owner, f"/knowledge/{failed.pk}/", "en")


def test_sizes_in_a_refusal_use_the_admins_decimal_separator(world, media, settings):
    settings.KNOWLEDGE_MAX_FILE_BYTES = 3 * 1024 * 1024 // 2  # 1.5 MB
    owner = logged_in(world.owner_a)
    big = b"producto,precio\n" + b"camiseta azul,10\n" * (1_700_000 // 17)  # 1.6 MB
    spanish = owner.post(
        "/api/v1/documents/",
        {"file": ContentFile(big, name="precios.csv")},
        HTTP_ACCEPT_LANGUAGE="es",
    )
    assert spanish.status_code == 413
    assert spanish.json()["error"]["message"] == (
        "El archivo ocupa 1,6 MB; el límite es 1,5 MB por archivo."
    )
    english = upload(owner, "precios.csv", big)
    assert english.json()["error"]["message"] == "The file is 1.6 MB; the limit is 1.5 MB per file."
    with tenant_context(world.tenant_a):
        assert not Document.objects.exists()
