"""The "WhatsApp numbers" dashboard page and API: connect (control command + QR polled by HTMX),
status, stop, log out; staff may look but not change; tenant B never sees tenant A's numbers."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest
from django.test import Client
from django_tenants.utils import tenant_context

from apps.channels import contract, services
from apps.channels.models import WhatsAppSession

pytestmark = pytest.mark.django_db


def logged_in(persona) -> Client:
    client = Client(HTTP_HOST=persona.host)
    response = client.post("/login/", {"username": persona.email, "password": persona.password})
    assert response.status_code == 302
    return client


def control_types(client) -> list[tuple[str, str]]:
    return [
        (json.loads(f["event"])["type"], json.loads(f["event"])["session_id"])
        for _i, f in client.xrange(contract.control_stream())
    ]


def test_owner_connects_a_number_and_the_qr_is_polled_until_paired(
    world, streams, django_capture_on_commit_callbacks
):
    owner = logged_in(world.owner_a)
    page = owner.get("/whatsapp/")
    assert page.status_code == 200 and b"Connect a number" in page.content
    with django_capture_on_commit_callbacks(execute=True):
        created = owner.post("/whatsapp/", {"label": "Ventas"})
    assert created.status_code == 302
    with tenant_context(world.tenant_a):
        session = WhatsAppSession.objects.get(label="Ventas")
    assert created["Location"] == f"/whatsapp/{session.pk}/"
    assert control_types(streams) == [("start", session.session_id)]

    detail = owner.get(created["Location"])
    assert b"Waiting for the gateway" in detail.content
    assert f'hx-get="/whatsapp/{session.pk}/status/"'.encode() in detail.content

    with tenant_context(world.tenant_a):
        services.whatsapp_session_qr_apply(
            session_id=session.session_id,
            qr="2@pairing-code-1",
            attempt=1,
            gateway_id="gw-1",
            ts=datetime(2026, 11, 25, 22, 0, tzinfo=UTC),
        )
    fragment = owner.get(f"/whatsapp/{session.pk}/status/", HTTP_HX_REQUEST="true")
    assert fragment.status_code == 200
    assert b"<svg" in fragment.content and b'data-attempt="1"' in fragment.content
    assert b"<html" not in fragment.content  # a fragment for the swap, not a page

    with tenant_context(world.tenant_a):
        services.whatsapp_session_status_apply(
            session_id=session.session_id,
            status="ready",
            wa_state="CONNECTED",
            reason=None,
            phone="5215500000009",
            gateway_id="gw-1",
            ts=datetime(2026, 11, 25, 22, 1, tzinfo=UTC),
        )
    fragment = owner.get(f"/whatsapp/{session.pk}/status/", HTTP_HX_REQUEST="true")
    assert b"<svg" not in fragment.content
    assert b"Connected" in fragment.content and b"+5215500000009" in fragment.content

    with django_capture_on_commit_callbacks(execute=True):
        stopped = owner.post(f"/whatsapp/{session.pk}/stop/", HTTP_HX_REQUEST="true")
        owner.post(f"/whatsapp/{session.pk}/logout/")
    assert b"Stopping" in stopped.content
    assert control_types(streams)[1:] == [
        ("stop", session.session_id),
        ("logout", session.session_id),
    ]
    listing = owner.get("/whatsapp/")
    assert b"Ventas" in listing.content and b"Logging out" in listing.content


def test_staff_sees_numbers_but_cannot_change_them_and_tenant_b_sees_nothing(world, streams):
    with tenant_context(world.tenant_a):
        session = services.whatsapp_session_create(label="Soporte")
    staff = logged_in(world.staff_a)
    page = staff.get("/whatsapp/")
    assert b"Soporte" in page.content and b"Connect a number" not in page.content
    assert staff.post("/whatsapp/", {"label": "x"}).status_code == 403
    assert staff.post(f"/whatsapp/{session.pk}/start/").status_code == 403
    assert staff.get(f"/whatsapp/{session.pk}/").status_code == 200

    other = logged_in(world.owner_b)
    assert b"Soporte" not in other.get("/whatsapp/").content
    assert other.get(f"/whatsapp/{session.pk}/").status_code == 404
    assert other.post(f"/whatsapp/{session.pk}/start/").status_code == 404
    assert other.get(f"/api/v1/whatsapp/sessions/{session.session_id}/").status_code == 404
    assert control_types(streams) == []


def test_the_api_lists_creates_and_controls_numbers(
    world, streams, django_capture_on_commit_callbacks
):
    owner = logged_in(world.owner_a)
    with django_capture_on_commit_callbacks(execute=True):
        created = owner.post(
            "/api/v1/whatsapp/sessions/", {"label": "API"}, content_type="application/json"
        )
    assert created.status_code == 201
    body = created.json()
    assert body["status"] == "start_requested" and body["qr"] is None
    session_id = body["session_id"]
    with tenant_context(world.tenant_a):
        services.whatsapp_session_qr_apply(
            session_id=session_id,
            qr="2@api-qr",
            attempt=1,
            gateway_id="gw-1",
            ts=datetime(2026, 11, 25, 22, 0, tzinfo=UTC),
        )
    status = owner.get(f"/api/v1/whatsapp/sessions/{session_id}/").json()
    assert (status["status"], status["qr"]) == ("qr", "2@api-qr")
    listing = owner.get("/api/v1/whatsapp/sessions/").json()
    assert session_id in [item["session_id"] for item in listing["results"]]
    with django_capture_on_commit_callbacks(execute=True):
        stop = owner.post(f"/api/v1/whatsapp/sessions/{session_id}/stop/")
    assert stop.status_code == 202 and stop.json()["status"] == "stop_requested"
    assert [t for t, _s in control_types(streams)] == ["start", "stop"]

    staff = logged_in(world.staff_a)
    assert staff.get(f"/api/v1/whatsapp/sessions/{session_id}/").status_code == 200
    denied = staff.post(f"/api/v1/whatsapp/sessions/{session_id}/logout/")
    assert denied.status_code == 403 and denied.json()["error"]["status"] == 403
    beta = logged_in(world.owner_b)
    assert beta.get("/api/v1/whatsapp/sessions/").json()["count"] == 0


def test_a_start_no_gateway_answered_is_flagged_and_can_be_sent_again(
    world, streams, django_capture_on_commit_callbacks
):
    from datetime import timedelta

    from django.utils import timezone

    owner = logged_in(world.owner_a)
    with django_capture_on_commit_callbacks(execute=True):
        owner.post("/whatsapp/", {"label": "Nadie"})
    with tenant_context(world.tenant_a):
        session = WhatsAppSession.objects.get(label="Nadie")
        fresh = owner.get(f"/whatsapp/{session.pk}/status/", HTTP_HX_REQUEST="true")
        assert b"No WhatsApp gateway answered" not in fresh.content
        WhatsAppSession.objects.filter(pk=session.pk).update(
            updated_at=timezone.now() - timedelta(minutes=2)
        )
    stale = owner.get(f"/whatsapp/{session.pk}/status/", HTTP_HX_REQUEST="true")
    assert b"No WhatsApp gateway answered" in stale.content
    assert f'action="/whatsapp/{session.pk}/start/"'.encode() in stale.content
    with django_capture_on_commit_callbacks(execute=True):
        owner.post(f"/whatsapp/{session.pk}/start/")
    assert [t for t, _s in control_types(streams)] == ["start", "start"]
