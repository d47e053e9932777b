"""workers.delivery.deliver_message: a stored reply becomes a send_text command on its number's
outbound stream (event id stored on the message, stable on retries); the simulator and messages
that may no longer go out publish nothing."""

from __future__ import annotations

import json
import uuid

import pytest
from django.utils import timezone
from django_tenants.utils import tenant_context

from apps.accounts.models import User
from apps.channels import contract, services
from apps.conversations.models import Message
from apps.conversations.services import (
    BotReply,
    bot_reply_record,
    conversation_handoff,
    inbound_message_record,
    staff_message_send,
)
from workers.delivery import deliver_message

pytestmark = pytest.mark.django_db


def _commands(client, session_id: str) -> list[dict]:
    stream = contract.outbound_stream(session_id)
    return [json.loads(f["event"]) for _i, f in client.xrange(stream)]


def _customer_writes(channel: str, channel_ref: str, wa_id: str = "5215512345678@c.us"):
    return inbound_message_record(
        channel=channel,
        channel_ref=channel_ref,
        contact_wa_id=wa_id,
        contact_phone="+5215512345678",
        contact_name="Ana",
        external_id=f"false_{wa_id}_{uuid.uuid4().hex}",
        kind="text",
        text="Hola",
        media=None,
        sent_at=timezone.now(),
    )


def test_a_staff_reply_is_published_once_with_its_event_id(world, streams):
    with tenant_context(world.tenant_a):
        session = services.whatsapp_session_create(label="Ventas")
        inbound = _customer_writes("whatsapp", session.session_id)
        staff = User.objects.get(email=world.staff_a.email)
        reply = staff_message_send(
            conversation_id=inbound.conversation.pk, author=staff, text="Hola Ana, soy Luis"
        )
        event_id = deliver_message(reply.pk)
        # A retried task publishes the same command again: the gateway's send dedupe skips it.
        assert deliver_message(reply.pk) == event_id
        reply.refresh_from_db()
    assert str(reply.command_event_id) == event_id
    commands = _commands(streams, session.session_id)
    assert len(commands) == 2 and {c["event_id"] for c in commands} == {event_id}
    command = commands[0]
    assert (command["type"], command["chat_id"], command["text"], command["tenant_schema"]) == (
        "send_text",
        "5215512345678@c.us",
        "Hola Ana, soy Luis",
        "alpha",
    )
    assert "expires_at" not in command  # staff messages go out whenever the number is back
    with tenant_context(world.tenant_b):
        assert not Message.objects.filter(pk=reply.pk, text="Hola Ana, soy Luis").exists()


def _bot_reply(inbound, text: str):
    return bot_reply_record(
        conversation_id=inbound.conversation.pk,
        answered_through_id=inbound.message.pk,
        replied_to_ids=[inbound.message.pk],
        reply=BotReply(
            text=text,
            provider="local",
            model="test",
            latency_ms=1,
            tokens_in=1,
            tokens_out=1,
            usage_id=None,
            citations=[],
        ),
    )


def test_a_bot_reply_expires_and_is_not_sent_after_a_handoff(world, streams):
    with tenant_context(world.tenant_a):
        session = services.whatsapp_session_create(label="Bot")
        first = _customer_writes("whatsapp", session.session_id, "5215500000002@c.us")
        reply = _bot_reply(first, "El plan Pro cuesta 20 USD.")
        assert deliver_message(reply.pk) is not None
        second = _customer_writes("whatsapp", session.session_id, "5215500000002@c.us")
        late = _bot_reply(second, "¿Algo más?")
        conversation_handoff(conversation_id=first.conversation.pk, reason="test")
        assert deliver_message(late.pk) is None
    commands = _commands(streams, session.session_id)
    assert [c["text"] for c in commands] == ["El plan Pro cuesta 20 USD."]
    assert commands[0]["expires_at"].endswith("Z")


def test_the_simulator_publishes_nothing(world, streams):
    with tenant_context(world.tenant_a):
        inbound = _customer_writes("simulator", "", "sim:" + uuid.uuid4().hex)
        staff = User.objects.get(email=world.owner_a.email)
        reply = staff_message_send(conversation_id=inbound.conversation.pk, author=staff, text="ok")
        assert deliver_message(reply.pk) is None
        reply.refresh_from_db()
        assert reply.command_event_id is None
    assert list(streams.scan_iter("eva:outbound:*")) == []
