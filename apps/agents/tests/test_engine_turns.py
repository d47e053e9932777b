"""Single turns of the engine run in-process (the worker runs exactly this function): handoff
rules, the model's handoff flag, skips, and the agent a conversation is bound to."""

from __future__ import annotations

import uuid
from datetime import time

import pytest
from django.utils import timezone
from django_tenants.utils import tenant_context

from apps.agents.engine import conversation_reply
from apps.agents.services import agent_create
from apps.conversations.models import Conversation, Message
from apps.conversations.services import inbound_message_record

pytestmark = pytest.mark.django_db


def say(text: str, wa_id: str = "900@c.us", **kw):
    return inbound_message_record(
        channel=kw.pop("channel", "whatsapp"),
        channel_ref="main",
        contact_wa_id=wa_id,
        contact_phone=None,
        contact_name=kw.pop("contact_name", None),
        external_id=f"wamid.{uuid.uuid4().hex}",
        kind="text",
        text=text,
        media=None,
        sent_at=timezone.now(),
        **kw,
    )


def turn(record):
    return conversation_reply(conversation_id=record.conversation.pk, message_id=record.message.pk)


def test_no_relevant_knowledge_twice_hands_off(world):
    with tenant_context(world.tenant_a):
        agent_create(name="Sofía", handoff_low_relevance_turns=2)
        first = turn(say("¿Venden bicicletas eléctricas plegables?"))
        assert first.status == "replied"
        reply = Message.objects.get(pk=first.message_id)
        assert reply.provider == "local" and "persona" in reply.text  # offers a person
        assert Conversation.objects.get(pk=reply.conversation_id).mode == "bot"

        second = turn(say("¿Y patinetes con sillín?"))
        assert second.status == "handoff" and "no relevant knowledge" in second.reason
        conversation = Conversation.objects.get(pk=reply.conversation_id)
        assert conversation.mode == "human"
        assert Message.objects.get(pk=second.message_id).is_handoff_notice

        # In human mode the engine does nothing at all.
        third = turn(say("¿hola?"))
        assert (third.status, third.reason) == ("skipped", "conversation is in human mode")


def test_keywords_and_business_hours_hand_off(world):
    with tenant_context(world.tenant_a):
        agent_create(name="Sofía", handoff_keywords=["reclamación"])
        outcome = turn(say("Quiero poner una Reclamación por mi pedido", wa_id="901@c.us"))
        assert (outcome.status, outcome.reason) == ("handoff", "keyword: reclamación")

    with tenant_context(world.tenant_b):
        now = timezone.localtime(timezone.now(), timezone.get_fixed_timezone(0)).time()
        # Business hours that exclude the present moment.
        start = time((now.hour + 2) % 24)
        end = time((now.hour + 3) % 24)
        agent_create(name="Nocturna", handoff_outside_hours=True, hours_start=start, hours_end=end)
        outcome = turn(say("Hello, is anybody there?", wa_id="902@c.us"))
        assert (outcome.status, outcome.reason) == ("handoff", "outside business hours")
        notice = Message.objects.get(pk=outcome.message_id)
        assert notice.text.startswith("Thanks for writing")


def test_skips_without_agent_duplicates_and_newer_messages(world):
    with tenant_context(world.tenant_a):
        record = say("hola", wa_id="903@c.us")
        assert turn(record).reason == "the tenant has no active agent"
        agent = agent_create(name="Sofía", language_policy="fixed", default_language="en")
        newer = say("¿Cuánto cuesta el envío?", wa_id="903@c.us")
        assert turn(record).reason == "a newer message will be answered with this one"
        outcome = turn(newer)
        assert outcome.status == "replied"
        reply = Message.objects.get(pk=outcome.message_id)
        assert reply.replied_to_ids == [record.message.pk, newer.message.pk]
        assert reply.text.startswith("I don't")  # the agent's fixed language, not Spanish
        assert Conversation.objects.get(pk=record.conversation.pk).agent_id == agent.pk
        # The same task again (a redelivery) answers nothing twice.
        assert turn(newer).reason == "already answered"
        assert Message.objects.filter(sender="bot", conversation=record.conversation).count() == 1


def test_the_models_handoff_flag_and_a_bound_agent(world, openai_stub):
    from apps.agents.tests.conftest import grounded_answer

    def upset(body):
        answer = grounded_answer(body)
        answer.update(
            reply="Lamento mucho lo ocurrido, te paso con un compañero.",
            handoff=True,
            escalation_reason="angry customer",
        )
        return answer

    openai_stub.responder = upset
    with tenant_context(world.tenant_a):
        from apps.ai.services import provider_key_set

        provider_key_set(provider="openai", api_key="sk-test", base_url=openai_stub.base_url)
        agent_create(name="Default")
        bound = agent_create(name="Vendedor", model_route="openai:gpt-4o-mini")
        record = say("¡Es la tercera vez que me llega roto!", wa_id="904@c.us", agent_id=bound.pk)
        outcome = turn(record)
        assert (outcome.status, outcome.reason) == ("handoff", "angry customer")
        reply = Message.objects.get(pk=outcome.message_id)
        assert reply.model == "gpt-4o-mini" and reply.is_handoff_notice
        assert "Vendedor" in openai_stub.seen[0]["messages"][0]["content"]
        assert Conversation.objects.get(pk=record.conversation.pk).mode == "human"


def test_a_first_hello_gets_the_agents_greeting(world):
    with tenant_context(world.tenant_a):
        agent_create(name="Sofía", greeting="¡Hola! Soy Sofía, de Alpha Store. ¿Qué buscas?")
        first = turn(say("¡Hola!", wa_id="906@c.us"))
        reply = Message.objects.get(pk=first.message_id)
        assert reply.text == "¡Hola! Soy Sofía, de Alpha Store. ¿Qué buscas?"
        assert reply.model == "greeting"
        again = turn(say("hola", wa_id="906@c.us"))
        assert Message.objects.get(pk=again.message_id).model == "local-extractive"
