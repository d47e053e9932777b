"""A customer's name: the WhatsApp profile's until the customer states theirs; what staff type
is never replaced by what the bot hears."""

from __future__ import annotations

import pytest
from django_tenants.utils import tenant_context

from apps.agents.engine import conversation_reply
from apps.agents.services import agent_create
from apps.agents.tests.test_engine_turns import say
from apps.conversations.models import Contact
from apps.conversations.services import contact_lead_fields_fill, contact_update

pytestmark = pytest.mark.django_db


def writes(text: str, *, profile_name: str | None, wa_id: str):
    return say(text, wa_id=wa_id, contact_name=profile_name)


def test_the_name_a_customer_states_replaces_their_profile_name(world):
    with tenant_context(world.tenant_a):
        agent_create(name="Sofía")
        first = writes("Hola", profile_name="Ana 🌸", wa_id="34611000001@c.us")
        contact = Contact.objects.get(pk=first.conversation.contact_id)
        assert (contact.name, contact.name_source) == ("Ana 🌸", "profile")

        said = writes(
            "Me llamo Ana García, ¿tienen sofás?", profile_name="Ana 🌸", wa_id="34611000001@c.us"
        )
        conversation_reply(conversation_id=said.conversation.pk, message_id=said.message.pk)
        contact.refresh_from_db()
        assert (contact.name, contact.name_source) == ("Ana García", "customer")

        # Stated once, it stays: another "name" heard later does not replace it.
        assert contact_lead_fields_fill(contact_id=contact.pk, values={"name": "Ana G."}) == []
        contact.refresh_from_db()
        assert contact.name == "Ana García"


def test_a_name_staff_typed_is_never_replaced_and_an_empty_one_is_filled(world):
    with tenant_context(world.tenant_a):
        typed = writes("Hola", profile_name="Tienda Pepe", wa_id="34611000002@c.us")
        contact = Contact.objects.get(pk=typed.conversation.contact_id)
        contact_update(contact=contact, name="José Pérez (ferretería)")
        contact.refresh_from_db()
        assert contact.name_source == "staff"
        assert contact_lead_fields_fill(contact_id=contact.pk, values={"name": "Pepe"}) == []
        contact.refresh_from_db()
        assert contact.name == "José Pérez (ferretería)"

        nameless = writes("Hola", profile_name=None, wa_id="34611000003@c.us")
        filled = contact_lead_fields_fill(
            contact_id=nameless.conversation.contact_id, values={"name": "Marta"}
        )
        assert filled == ["name"]
        contact = Contact.objects.get(pk=nameless.conversation.contact_id)
        assert (contact.name, contact.name_source) == ("Marta", "customer")
