"""The dashboard (/knowledge/) and the API's permissions: owners/admins upload, retry and delete;
staff read and search; tenant B sees none of A's documents."""

from __future__ import annotations

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django_tenants.utils import tenant_context

from apps.knowledge.models import Chunk, Document
from apps.knowledge.services import document_ingest
from apps.knowledge.tests import files
from apps.knowledge.tests.conftest import logged_in, stored_document, upload

pytestmark = pytest.mark.django_db


def test_dashboard_upload_of_several_files_then_list_detail_and_delete(
    world, media, django_capture_on_commit_callbacks
):
    owner = logged_in(world.owner_a)
    page = owner.get("/knowledge/")
    assert page.status_code == 200
    assert 'name="files"' in page.content.decode() and "multiple" in page.content.decode()

    response = owner.post(
        "/knowledge/",
        {
            "files": [
                SimpleUploadedFile("tallas.md", files.MARKDOWN),
                SimpleUploadedFile("foto.pdf", files.PNG),
                SimpleUploadedFile("precios.csv", files.CSV),
            ]
        },
        follow=True,
    )
    html = response.content.decode()
    assert "tallas.md uploaded; processing" in html
    assert "foto.pdf: This file is a PNG image" in html
    with tenant_context(world.tenant_a):
        documents = {d.original_name: d for d in Document.objects.all()}
    assert set(documents) == {"tallas.md", "precios.csv"}
    # While something is pending, the rows poll themselves.
    assert 'hx-get="/knowledge/rows/"' in html and 'hx-trigger="every 2s"' in html
    rows = owner.get("/knowledge/rows/", HTTP_HX_REQUEST="true").content.decode()
    assert rows.startswith('<tbody id="document-rows" hx-get=') and "Pending" in rows

    with tenant_context(world.tenant_a):
        for document in documents.values():
            document_ingest(document_id=document.pk)
    rows = owner.get("/knowledge/rows/", HTTP_HX_REQUEST="true").content.decode()
    assert "hx-trigger" not in rows  # nothing busy: polling stops
    assert rows.count('data-status="ready"') == 2

    md = documents["tallas.md"]
    detail = owner.get(f"/knowledge/{md.pk}/").content.decode()
    assert "Guía de tallas &gt; Tallas de cuadro" in detail
    assert "Altura: 165-180 cm | Talla: M" in detail

    search = owner.get("/knowledge/", {"q": "¿qué talla necesito si mido 170 cm?"}).content.decode()
    assert "Talla: M" in search

    with django_capture_on_commit_callbacks(execute=True):  # the file goes once committed
        deleted = owner.post(f"/knowledge/{md.pk}/delete/", HTTP_HX_REQUEST="true")
    assert deleted.status_code == 200 and deleted.content == b""
    with tenant_context(world.tenant_a):
        assert not Document.objects.filter(pk=md.pk).exists()
        assert not Chunk.objects.filter(document_id=md.pk).exists()
    assert not (media / "alpha" / md.file.name).exists()
    assert (media / "alpha" / documents["precios.csv"].file.name).exists()

    # Tenant B sees none of it, by page or by id.
    owner_b = logged_in(world.owner_b)
    assert "precios" not in owner_b.get("/knowledge/").content.decode()
    csv_id = documents["precios.csv"].pk
    assert owner_b.get(f"/knowledge/{csv_id}/").status_code == 404
    assert owner_b.post(f"/knowledge/{csv_id}/delete/").status_code == 404
    assert "Sillín" not in owner_b.get("/knowledge/", {"q": "sillín gel"}).content.decode()


def test_dashboard_refuses_with_400_when_no_file_is_taken(world, media):
    owner = logged_in(world.owner_a)
    response = owner.post("/knowledge/", {"files": [SimpleUploadedFile("foto.pdf", files.PNG)]})
    assert response.status_code == 400
    assert "foto.pdf: This file is a PNG image" in response.content.decode()
    empty = owner.post("/knowledge/", {})
    assert empty.status_code == 400
    assert "Choose or drop at least one file." in empty.content.decode()
    with tenant_context(world.tenant_a):
        assert not Document.objects.exists()


def test_dashboard_retry_and_status_panel(world, media):
    owner = logged_in(world.owner_a)
    with tenant_context(world.tenant_a):
        document = stored_document(files.make_encrypted_pdf([["x"]]), "secreto.pdf", "pdf")
        document_ingest(document_id=document.pk)
    detail = owner.get(f"/knowledge/{document.pk}/").content.decode()
    assert "password-protected" in detail and "Process again" in detail
    response = owner.post(f"/knowledge/{document.pk}/retry/", follow=True)
    assert "is queued again" in response.content.decode()
    panel = owner.get(f"/knowledge/{document.pk}/status/", HTTP_HX_REQUEST="true")
    assert 'hx-trigger="every 2s"' in panel.content.decode()  # pending: keeps polling
    with tenant_context(world.tenant_a):
        document_ingest(document_id=document.pk)
    panel = owner.get(f"/knowledge/{document.pk}/status/?was_busy=1", HTTP_HX_REQUEST="true")
    assert panel["HX-Refresh"] == "true" and "hx-trigger" not in panel.content.decode()


def test_staff_read_and_search_but_do_not_manage(world, media):
    owner, staff = logged_in(world.owner_a), logged_in(world.staff_a)
    created = upload(owner, "a.csv", files.CSV).json()
    assert upload(staff, "b.md", files.MARKDOWN).status_code == 403
    assert (
        staff.post(
            "/knowledge/", {"files": [SimpleUploadedFile("b.md", files.MARKDOWN)]}
        ).status_code
        == 403
    )
    assert staff.get("/api/v1/documents/").json()["count"] == 1
    assert staff.get(f"/api/v1/documents/{created['id']}/").status_code == 200
    assert staff.delete(f"/api/v1/documents/{created['id']}/").status_code == 403
    assert staff.post(f"/api/v1/documents/{created['id']}/retry/").status_code == 403
    assert staff.post(f"/knowledge/{created['id']}/delete/").status_code == 403
    page = staff.get("/knowledge/").content.decode()
    assert 'name="files"' not in page and "a.csv" in page
    search = staff.post(
        "/api/v1/documents/search/", {"query": "sillín"}, content_type="application/json"
    )
    assert search.status_code == 200


def test_api_upload_validation_and_listing(world, media):
    owner = logged_in(world.owner_a)
    missing = owner.post("/api/v1/documents/", {})
    assert missing.status_code == 400 and missing.json()["error"]["fields"]["file"]
    created = upload(owner, "precios.csv", files.CSV, title="  Lista de precios ")
    assert created.status_code == 201
    body = created.json()
    assert body["title"] == "Lista de precios" and body["kind"] == "csv"
    assert body["uploaded_by"] == world.owner_a.email and body["duplicate"] is False
    assert len(body["sha256"]) == 64 and body["size"] == len(files.CSV)
    assert owner.post(f"/api/v1/documents/{body['id']}/retry/").status_code == 409  # still pending
    listing = owner.get("/api/v1/documents/").json()
    assert listing["count"] == 1 and listing["results"][0]["id"] == body["id"]
    bad_search = owner.post(
        "/api/v1/documents/search/", {"query": ""}, content_type="application/json"
    )
    assert bad_search.status_code == 400
    # B's list is empty, A's id is unknown to B.
    owner_b = logged_in(world.owner_b)
    assert owner_b.get("/api/v1/documents/").json()["count"] == 0
    assert owner_b.get(f"/api/v1/documents/{body['id']}/").json()["error"]["code"] == "not_found"


def test_the_same_content_in_two_tenants_is_two_documents(world, media):
    a = upload(logged_in(world.owner_a), "a.csv", files.CSV)
    b = upload(logged_in(world.owner_b), "a.csv", files.CSV)
    assert a.status_code == b.status_code == 201
    with tenant_context(world.tenant_b):
        assert Document.objects.count() == 1


def test_the_original_file_is_downloaded_never_shown_and_stays_in_its_tenant(world, media):
    owner = logged_in(world.owner_a)
    created = upload(owner, "precios <2026>.csv", files.CSV).json()
    detail = owner.get(f"/knowledge/{created['id']}/").content.decode()
    assert f'href="/knowledge/{created["id"]}/file/" download' in detail

    response = logged_in(world.staff_a).get(f"/knowledge/{created['id']}/file/")
    assert response.status_code == 200
    assert b"".join(response.streaming_content) == files.CSV
    assert response["Content-Type"] == "application/octet-stream"
    assert response["Content-Disposition"].startswith("attachment;")
    assert response["Content-Security-Policy"].startswith("sandbox")
    assert logged_in(world.owner_b).get(f"/knowledge/{created['id']}/file/").status_code == 404

    with tenant_context(world.tenant_a):
        stored = Document.objects.get(pk=created["id"])
        stored.file.storage.delete(stored.file.name)
    assert owner.get(f"/knowledge/{created['id']}/file/").status_code == 404


def test_the_original_file_comes_from_the_bucket(world, s3_media):
    owner = logged_in(world.owner_a)
    created = upload(owner, "precios.csv", files.CSV).json()
    response = owner.get(f"/knowledge/{created['id']}/file/")
    assert response.status_code == 200 and b"".join(response.streaming_content) == files.CSV
