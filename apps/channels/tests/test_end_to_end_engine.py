"""The issue's main flow end to end, through the agent engine (offline responder): see
test_end_to_end.py for the processes involved."""

from __future__ import annotations

import json
import uuid

import pytest

from apps.channels.tests.conftest import FAKE_SENT, drive, in_alpha, started_session, wait_for
from apps.conversations.models import Message

pytestmark = pytest.mark.django_db


def test_customer_text_answered_by_the_agent_engine_and_delivered(world, e2e):
    """The issue's main flow: gateway → stream → consumer → engine (offline responder) →
    outbound stream → gateway → fake sendMessage, and the ack comes back as delivered."""
    from apps.agents.models import Agent
    from apps.agents.services import agent_create

    streams = e2e["streams"]
    agent = in_alpha(world, lambda: agent_create(name="Eva e2e"))
    e2e["cleanup"].append(lambda: Agent.objects.filter(pk=agent.pk).delete())
    e2e["consumer"]("e2e-engine")
    e2e["gateway"]()
    sid = started_session(world, e2e, "E2E engine")
    customer = f"52177{uuid.uuid4().int % 10**8:08d}@c.us"
    e2e["wa_ids"].append(customer)
    drive(
        streams,
        session_id=sid,
        action="receive",
        **{"from": customer},
        body="Hola, ¿qué horario de atención tienen?",
    )

    def bot_reply() -> Message | None:
        return in_alpha(
            world,
            lambda: Message.objects.filter(
                conversation__contact__wa_id=customer, direction="out", status="delivered"
            ).first(),
        )

    reply = wait_for(bot_reply, what="the engine's reply delivered", timeout=90)
    assert reply.sender == "bot" and reply.text
    sent = [json.loads(f["event"]) for _i, f in streams.xrange(FAKE_SENT)]
    ours = [s for s in sent if s["chat_id"] == customer]
    assert [s["text"] for s in ours] == [reply.text]
    assert ours[0]["wa_id"] == reply.external_id
