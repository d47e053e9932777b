"""Agents: CRUD in the dashboard and the API, owners/admins write, everyone reads, and tenant B
never sees tenant A's agents."""

from __future__ import annotations

import re

import pytest
from django.test import Client
from django_tenants.utils import tenant_context

from apps.agents.models import Agent
from apps.agents.services import AGENT_FIELDS

pytestmark = pytest.mark.django_db


def logged_in(persona) -> Client:
    client = Client(HTTP_HOST=persona.host)
    response = client.post("/login/", {"username": persona.email, "password": persona.password})
    assert response.status_code == 302
    return client


AGENT = {
    "name": "Sofía",
    "persona": "Sofía, the friendly assistant of the store",
    "tone": "friendly",
    "instructions": "Always offer free delivery in Madrid when the knowledge says so.",
    "sales_goals": ["qualify", "share_prices", "collect_email"],
    "greeting": "¡Hola! Soy Sofía.",
    "language_policy": "customer",
    "default_language": "es",
    "knowledge_scope": "all",
    "handoff_keywords": ["reclamación", "abogado"],
    "max_reply_chars": 500,
}


def test_api_crud_with_roles_and_isolation(world):
    owner = logged_in(world.owner_a)
    created = owner.post("/api/v1/agents/", AGENT, content_type="application/json")
    assert created.status_code == 201, created.content
    body = created.json()
    assert body["name"] == "Sofía" and body["is_default"] is True  # the first agent
    assert body["sales_goals"] == ["qualify", "share_prices", "collect_email"]
    agent_id = body["id"]

    patched = owner.patch(
        f"/api/v1/agents/{agent_id}/", {"tone": "formal"}, content_type="application/json"
    )
    assert patched.status_code == 200 and patched.json()["tone"] == "formal"

    invalid = owner.patch(
        f"/api/v1/agents/{agent_id}/",
        {"knowledge_scope": "selected", "document_ids": []},
        content_type="application/json",
    )
    assert invalid.status_code == 400
    assert invalid.json()["error"]["code"] == "invalid"
    assert "document_ids" in invalid.json()["error"]["fields"]
    unknown = owner.patch(
        f"/api/v1/agents/{agent_id}/",
        {"knowledge_scope": "selected", "document_ids": [987654]},
        content_type="application/json",
    )
    assert unknown.status_code == 400
    assert unknown.json()["error"]["message"] == "document_ids: No such documents: [987654]."

    # Staff read agents but cannot change them.
    staff = logged_in(world.staff_a)
    assert staff.get(f"/api/v1/agents/{agent_id}/").json()["tone"] == "formal"
    denied = staff.patch(
        f"/api/v1/agents/{agent_id}/", {"tone": "casual"}, content_type="application/json"
    )
    assert denied.status_code == 403

    # Tenant B sees none of A's agents, by list or by id, and cannot change or delete them.
    owner_b = logged_in(world.owner_b)
    assert owner_b.get("/api/v1/agents/").json()["count"] == 0
    assert owner_b.get(f"/api/v1/agents/{agent_id}/").status_code == 404
    assert (
        owner_b.patch(
            f"/api/v1/agents/{agent_id}/", {"name": "x"}, content_type="application/json"
        ).status_code
        == 404
    )
    assert owner_b.delete(f"/api/v1/agents/{agent_id}/").status_code == 404

    # A second default agent takes the flag from the first.
    leo = AGENT | {"name": "Leo", "is_default": True}
    second = owner.post("/api/v1/agents/", leo, content_type="application/json").json()
    with tenant_context(world.tenant_a):
        assert list(Agent.objects.filter(is_default=True).values_list("name", flat=True)) == ["Leo"]
    assert owner.delete(f"/api/v1/agents/{second['id']}/").status_code == 204
    with tenant_context(world.tenant_a):
        assert Agent.objects.get(pk=agent_id).is_default  # the default passed back
    with tenant_context(world.tenant_b):
        assert not Agent.objects.exists()


def test_dashboard_crud_and_isolation(world):
    owner = logged_in(world.owner_a)
    page = owner.get("/agents/new/")
    assert page.status_code == 200 and b"Sales goals" in page.content
    form = {
        "name": "Marta",
        "persona": "Marta from the showroom",
        "tone": "professional",
        "instructions": "",
        "sales_goals": ["book_visit"],
        "greeting": "",
        "language_policy": "customer",
        "default_language": "es",
        "knowledge_scope": "all",
        "model_route": "",
        "handoff_on_request": "on",
        "handoff_keywords": "queja, devolución",
        "handoff_low_relevance_turns": "2",
        "min_relevance": "0",
        "timezone": "Europe/Madrid",
        "max_reply_chars": "600",
        "is_active": "on",
    }
    response = owner.post("/agents/new/", form)
    assert response.status_code == 302, response.content.decode()[:2000]
    with tenant_context(world.tenant_a):
        agent = Agent.objects.get(name="Marta")
        assert agent.handoff_keywords == ["queja", "devolución"]
        assert agent.sales_goals == ["book_visit"]
    listing = owner.get("/agents/")
    assert b"Marta" in listing.content

    bad = owner.post(f"/agents/{agent.pk}/edit/", form | {"timezone": "Mars/Olympus"})
    assert bad.status_code == 200 and b"Unknown time zone" in bad.content

    staff = logged_in(world.staff_a)
    assert b"Marta" in staff.get("/agents/").content
    assert staff.get(f"/agents/{agent.pk}/edit/").status_code == 403
    assert staff.get(f"/agents/{agent.pk}/simulator/").status_code == 200

    owner_b = logged_in(world.owner_b)
    assert b"Marta" not in owner_b.get("/agents/").content
    assert owner_b.get(f"/agents/{agent.pk}/edit/").status_code == 404
    assert owner_b.get(f"/agents/{agent.pk}/simulator/").status_code == 404
    assert owner_b.post(f"/agents/{agent.pk}/delete/").status_code == 404

    assert owner.post(f"/agents/{agent.pk}/delete/").status_code == 302
    with tenant_context(world.tenant_a):
        assert not Agent.objects.filter(name="Marta").exists()


def test_the_agent_editor_groups_every_field_and_starts_in_the_browsers_time_zone(world):
    owner = logged_in(world.owner_a)
    owner.cookies["eva_tz"] = "America/Sao_Paulo"  # set by the dashboard's script
    html = owner.get("/agents/new/", HTTP_ACCEPT_LANGUAGE="es").content.decode()
    legends = re.findall(r"<legend>([^<]+)</legend>", html)
    assert legends == [
        "Quién es el agente",
        "Ventas",
        "Idioma",
        "Conocimiento y modelo",
        "Traspaso a una persona",
        "Horario laboral",
        "Estado",
    ]
    shown = re.findall(r'<div class="field field-([a-z_]+)">', html)
    assert sorted(shown) == sorted(AGENT_FIELDS)  # every field, once
    zone = re.search(r'<input[^>]*name="timezone"[^>]*>', html)[0]
    assert 'value="America/Sao_Paulo"' in zone and 'list="time-zones"' in zone
    assert '<option value="Europe/Madrid">' in html  # suggested, not imposed

    # An agent being edited keeps its own zone, whatever the browser's.
    with tenant_context(world.tenant_a):
        agent = Agent.objects.create(name="Zona", timezone="Europe/Lisbon")
    html = owner.get(f"/agents/{agent.pk}/edit/").content.decode()
    assert 'value="Europe/Lisbon"' in re.search(r'<input[^>]*name="timezone"[^>]*>', html)[0]


def test_refusals_speak_the_users_language(world):
    """A Spanish-speaking owner reads why a change was refused in Spanish (API and inbox)."""
    from django.core.exceptions import ValidationError
    from django.utils import timezone, translation

    from apps.accounts.models import User
    from apps.conversations.services import (
        conversation_close,
        inbound_message_record,
        staff_message_send,
    )

    owner = logged_in(world.owner_a)
    created = owner.post("/api/v1/agents/", AGENT, content_type="application/json")
    agent_id = created.json()["id"]
    for language, expected in (("es", "Entre 50 y 4.096 caracteres."), ("en", "Between 50")):
        refused = owner.patch(
            f"/api/v1/agents/{agent_id}/",
            {"max_reply_chars": 10},
            content_type="application/json",
            HTTP_ACCEPT_LANGUAGE=language,
        )
        assert refused.status_code == 400
        assert expected in str(refused.json()["error"]["fields"]["max_reply_chars"])
    with tenant_context(world.tenant_a):
        assert Agent.objects.get(pk=agent_id).max_reply_chars == 500  # nothing changed
        record = inbound_message_record(
            channel="simulator",
            channel_ref="",
            contact_wa_id="sim:idioma",
            contact_phone=None,
            contact_name=None,
            external_id="sim:idioma:1",
            kind="text",
            text="hola",
            media=None,
            sent_at=timezone.now(),
        )
        conversation_close(conversation_id=record.conversation.pk)
        owner_user = User.objects.get(email=world.owner_a.email)
        with translation.override("es"), pytest.raises(ValidationError, match="está cerrada"):
            staff_message_send(
                conversation_id=record.conversation.pk, author=owner_user, text="¿Sigue ahí?"
            )


def test_a_simulator_chat_handed_to_a_person_links_to_the_inbox_and_is_not_a_waiting_customer(
    world,
):
    from apps.conversations.models import Conversation
    from apps.conversations.services import conversation_handoff

    owner = logged_in(world.owner_a)
    agent_id = owner.post("/api/v1/agents/", AGENT, content_type="application/json").json()["id"]
    owner.post(f"/agents/{agent_id}/simulator/send/", {"text": "quiero hablar con una persona"})
    with tenant_context(world.tenant_a):
        conversation = Conversation.objects.get(channel="simulator")
        conversation_handoff(conversation_id=conversation.pk, reason="customer asked for a person")

    thread = owner.get(
        f"/agents/{agent_id}/simulator/thread/", HTTP_ACCEPT_LANGUAGE="es"
    ).content.decode()
    assert f'href="/inbox/{conversation.pk}/"' in thread
    assert "Abrir este chat en la bandeja de entrada" in thread
    assert "Pasada a una persona: el cliente pidió hablar con una persona" in thread
    assert owner.get(f"/inbox/{conversation.pk}/").status_code == 200
    # Staff testing their agent are nobody waiting for a person.
    assert owner.get("/inbox/badge/").content.decode().strip() == ""


def test_the_simulator_refuses_a_voice_note_with_text_and_a_file_that_is_not_audio(world):
    from django.core.files.uploadedfile import SimpleUploadedFile

    from apps.conversations.models import Message

    owner = logged_in(world.owner_a)
    agent_id = owner.post("/api/v1/agents/", AGENT, content_type="application/json").json()["id"]
    ogg = SimpleUploadedFile("note.ogg", b"OggS" + bytes(200), content_type="audio/ogg")
    both = owner.post(
        f"/agents/{agent_id}/simulator/send/",
        {"text": "hola", "audio": ogg},
        HTTP_HX_REQUEST="true",
        HTTP_ACCEPT_LANGUAGE="es",
    ).content.decode()
    assert "Una nota de voz se envía sola" in both
    picture = SimpleUploadedFile("photo.png", b"\x89PNG\r\n\x1a\n" + bytes(50))
    refused = owner.post(f"/agents/{agent_id}/simulator/send/", {"audio": picture}, follow=True)
    assert "A voice note must be audio: OGG, MP3, M4A, WebM or WAV." in refused.content.decode()
    with tenant_context(world.tenant_a):
        assert not Message.objects.filter(conversation__channel="simulator").exists()
