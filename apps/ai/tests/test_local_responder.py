"""Without keys, chat_complete answers from the given context only, in the customer's language."""

from __future__ import annotations

import pytest
from django_tenants.utils import tenant_context

from apps.ai.chat import REPLY_SCHEMA, ChatMessage, ChatRequest, ContextPassage, chat_complete
from apps.ai.models import UsageRecord

CONTEXT = [
    ContextPassage(
        ref="c1",
        text="El envío a domicilio tarda de 2 a 3 días hábiles. Enviamos a todo el país.",
        source="faq.pdf",
    ),
    ContextPassage(
        ref="c2",
        text="Aceptamos pagos con tarjeta de crédito, débito y transferencia bancaria.",
        source="faq.pdf",
    ),
    ContextPassage(ref="c3", text="El plan Premium cuesta $49 al mes.", source="precios.xlsx"),
]


@pytest.fixture(autouse=True)
def _no_keys(settings) -> None:
    settings.GOOGLE_API_KEY = None
    settings.OPENAI_API_KEY = None
    settings.OPENAI_BASE_URL = None
    settings.AI_CHAT_ROUTE = "auto"


def _ask(text: str, context=CONTEXT, **kwargs) -> object:
    return chat_complete(
        ChatRequest(
            system="Eres el asistente de ventas de Alpha Store.",
            messages=[ChatMessage(role="user", text=text)],
            context=list(context),
            **kwargs,
        )
    )


@pytest.mark.django_db
def test_spanish_question_is_answered_from_the_context_and_metered(world) -> None:
    with tenant_context(world.tenant_a):
        result = _ask("Hola, ¿cuánto tarda el envío a mi casa?", agent_id=3)
        record = UsageRecord.objects.get(pk=result.usage_id)
    assert result.provider == "local" and result.model == "local-extractive"
    assert "2 a 3 días hábiles" in result.text
    assert "$49" not in result.text
    assert not result.fell_back and result.finish_reason == "stop"
    assert (record.kind, record.purpose, record.provider, record.agent_id) == (
        "chat",
        "reply",
        "local",
        3,
    )
    assert record.success and record.tokens_in > 0 and record.tokens_out > 0
    with tenant_context(world.tenant_b):
        assert not UsageRecord.objects.filter(pk=result.usage_id).exists()


@pytest.mark.django_db
def test_refuses_and_offers_a_human_when_the_context_has_no_answer(world) -> None:
    with tenant_context(world.tenant_a):
        result = _ask("¿Tienen una tienda física en Madrid?")
    assert "No tengo esa información" in result.text
    assert "persona" in result.text
    assert "Madrid" not in result.text


@pytest.mark.django_db
def test_never_invents_a_price_absent_from_the_context(world) -> None:
    with tenant_context(world.tenant_a):
        result = _ask("¿Cuál es el precio del envío?", context=CONTEXT[:2])
        priced = _ask("¿Cuánto cuesta el plan Premium?")
    assert "precio" in result.text and "persona" in result.text
    assert "$" not in result.text
    assert "$49 al mes" in priced.text


@pytest.mark.django_db
def test_portuguese_and_english_questions_get_replies_in_their_language(world) -> None:
    context = [
        ContextPassage(ref="p1", text="A entrega leva de 2 a 3 dias úteis para todo o Brasil."),
        ContextPassage(ref="e1", text="Our store opens Monday to Saturday from 9 am to 6 pm."),
    ]
    with tenant_context(world.tenant_a):
        pt = _ask("Olá, quanto tempo demora a entrega?", context=context)
        pt_unknown = _ask("Vocês têm loja em Lisboa?", context=context)
        en = _ask("When does your store open?", context=context)
        en_unknown = _ask("Do you sell gift cards?", context=context)
    assert pt.text.startswith("De acordo com") and "2 a 3 dias úteis" in pt.text
    assert pt_unknown.text.startswith("Não tenho essa informação")
    assert en.text.startswith("Here is what I have") and "Monday to Saturday" in en.text
    assert en_unknown.text.startswith("I don't have that information")


@pytest.mark.django_db
def test_structured_output_carries_the_reply_and_the_handoff_flag(world) -> None:
    with tenant_context(world.tenant_a):
        known = _ask("¿Cómo puedo pagar?", response_schema=REPLY_SCHEMA)
        unknown = _ask("¿Hacen envíos a Marte?", context=[], response_schema=REPLY_SCHEMA)
        human = _ask("Quiero hablar con una persona", response_schema=REPLY_SCHEMA)
    assert known.payload is not None and known.payload["handoff"] is False
    assert "transferencia" in known.payload["reply"] and known.payload["reply"] == known.text
    assert known.payload["lead"] == {"name": None, "email": None, "phone": None, "interest": None}
    assert unknown.payload is not None and unknown.payload["handoff"] is True
    assert human.payload is not None and human.payload["handoff"] is True


STRICT_SCHEMA = {
    "type": "object",
    "properties": {
        "reply": {"type": "string"},
        "language": {"type": "string"},
        "handoff": {"type": "boolean"},
        "escalation_reason": {"type": "string"},
        "lead": {
            "type": "object",
            "properties": {"name": {"type": "string"}, "email": {"type": "string"}},
            "required": ["name", "email"],
            "additionalProperties": False,
        },
        "sources": {"type": "array", "items": {"type": "string"}},
    },
    "required": ["reply", "language", "handoff", "escalation_reason", "lead", "sources"],
    "additionalProperties": False,
}


@pytest.mark.django_db
def test_a_closed_schema_gets_language_and_the_quoted_refs_and_no_invented_lead(world) -> None:
    with tenant_context(world.tenant_a):
        result = _ask("¿Cómo puedo pagar?", response_schema=STRICT_SCHEMA, language_hint="es")
    assert result.payload == {
        "reply": result.text,
        "language": "es",
        "handoff": False,
        "escalation_reason": "",
        "lead": {"name": "", "email": ""},
        "sources": ["c2"],
    }


@pytest.mark.django_db
def test_one_fact_is_quoted_once_in_the_customers_language(world) -> None:
    """The demo catalogue states the Oslo price in Spanish and again in English."""
    context = [
        ContextPassage(
            ref="es",
            text="El sofá Oslo de tres plazas cuesta 899 euros. El sofá cama Bergen cuesta "
            "649 euros e incluye colchón de 14 cm.",
        ),
        ContextPassage(ref="en", text="The Oslo three-seat sofa costs 899 euros."),
    ]
    with tenant_context(world.tenant_a):
        spanish = _ask("Hola, busco un sofá, ¿cuánto cuesta el Oslo?", context=context)
        english = _ask("How much does the Oslo sofa cost?", context=context)
    assert spanish.text.count("899") == 1 and "The Oslo" not in spanish.text
    assert "El sofá Oslo de tres plazas cuesta 899 euros." in spanish.text
    assert english.text.count("899") == 1
    assert "The Oslo three-seat sofa costs 899 euros." in english.text


@pytest.mark.django_db
def test_details_given_without_a_question_are_thanked_not_refused(world) -> None:
    with tenant_context(world.tenant_a):
        details = _ask("Me llamo Ana García, mi correo es ana.garcia@example.com")
        phone = _ask("Meu número é +55 11 98765-4321", context=CONTEXT[:1])
        asked = _ask("Soy Ana, ¿tienen tienda física en Madrid?")
    assert details.text == "¡Gracias! Lo he anotado. ¿En qué más puedo ayudarte?"
    assert phone.text == "Obrigado! Anotei. Em que mais posso ajudar?"
    # A question with the details is still a question: not known, so a person is offered.
    assert "No tengo esa información" in asked.text and "persona" in asked.text
