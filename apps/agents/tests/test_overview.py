"""The dashboard home: the steps to a working WhatsApp agent, each ticked from the tenant's own
data, and the sales counts with their plural forms."""

from __future__ import annotations

import re

import pytest
from django.utils import timezone
from django_tenants.utils import tenant_context

from apps.agents.models import Agent
from apps.agents.tests.conftest import agent_create_for, logged_in
from apps.channels.models import WhatsAppSession
from apps.channels.services import whatsapp_session_create
from apps.conversations.models import Contact, Conversation
from apps.conversations.services import inbound_message_record
from apps.knowledge.models import Document

pytestmark = pytest.mark.django_db


def _steps(page: str) -> list[tuple[str, str]]:
    """(state, title) of each step, in order."""
    return re.findall(r'<li class="(done|todo)">.*?<a href="[^"]*">([^<]+)</a>', page)


def test_the_steps_follow_what_the_tenant_has_set_up(world):
    with tenant_context(world.tenant_a):
        # A blank workspace (rolled back after the test).
        Conversation.objects.all().delete()
        Contact.objects.all().delete()
        Document.objects.all().delete()
        Agent.objects.all().delete()
        WhatsAppSession.objects.all().delete()
    owner = logged_in(world.owner_a)
    blank = owner.get("/agents/overview/").content.decode()
    assert _steps(blank) == [
        ("todo", "Describe your agent"),
        ("todo", "Upload your catalogue, price lists and FAQs"),
        ("todo", "Try the agent in the simulator"),
        ("todo", "Connect a WhatsApp number"),
    ]
    assert 'href="/agents/new/"' in blank and "All set" not in blank
    assert "<strong>0</strong> active agents" in blank

    with tenant_context(world.tenant_a):
        agent = agent_create_for(world.tenant_a)
        Document.objects.create(
            title="Precios", kind="csv", size=10, sha256="f" * 64, status="ready"
        )
        inbound_message_record(
            channel="simulator",
            channel_ref="",
            contact_wa_id="sim:overview",
            contact_phone=None,
            contact_name=None,
            external_id="sim:overview:1",
            kind="text",
            text="hola",
            media=None,
            sent_at=timezone.now(),
        )
    halfway = owner.get("/agents/overview/").content.decode()
    assert [state for state, _title in _steps(halfway)] == ["done", "done", "done", "todo"]
    assert f'href="/agents/{agent.pk}/simulator/"' in halfway
    assert "<strong>1</strong> active agent</a>" in halfway

    with tenant_context(world.tenant_a):
        session = whatsapp_session_create(label="Ventas")
        WhatsAppSession.objects.filter(pk=session.pk).update(status="ready")
    done = owner.get("/agents/overview/", HTTP_ACCEPT_LANGUAGE="es").content.decode()
    assert [state for state, _title in _steps(done)] == ["done"] * 4
    assert "Todo listo: su agente atiende a sus clientes en WhatsApp." in done
    assert "<strong>1</strong> agente activo</a>" in done

    # Tenant B's home knows nothing of A's agent, documents or number.
    other = logged_in(world.owner_b).get("/agents/overview/").content.decode()
    assert "All set" not in other and ("todo", "Connect a WhatsApp number") in _steps(other)
