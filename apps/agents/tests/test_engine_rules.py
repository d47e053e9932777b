"""The engine's rules that act without a model: person requests, keywords, business hours,
lead values only from the customer's words, prompt-leak detection, reply trimming."""

from __future__ import annotations

from datetime import UTC, datetime, time

import pytest

from apps.agents.engine import (
    asks_for_person,
    lead_values,
    outside_business_hours,
    rule_lead_fields,
    said_by_customer,
)
from apps.agents.models import Agent
from apps.agents.prompt import GUARDRAILS, leaks_prompt, system_prompt, trim_reply


@pytest.mark.parametrize(
    ("text", "asks"),
    [
        ("quiero hablar con una persona", True),
        ("¿Puedo hablar con un asesor?", True),
        ("Quiero un humano por favor", True),
        ("pásame con alguien de ventas", True),
        ("I want to talk to a human", True),
        ("Can I speak with someone?", True),
        ("Quero falar com uma pessoa", True),
        ("¿Cuánto cuesta el sofá para cuatro personas?", False),
        ("una persona me recomendó la tienda", False),
        ("What does the human-size bean bag cost?", False),
    ],
)
def test_person_requests(text, asks):
    assert asks_for_person(text) is asks


def test_lead_values_come_only_from_what_the_customer_wrote():
    said = "Hola, me llamo Ana García y mi correo es Ana@Example.com. Busco un sofá de 900 euros"
    assert rule_lead_fields(said) == {"email": "ana@example.com", "name": "Ana García"}
    model = {
        "name": "Ana García",
        "email": "ana@example.com",
        "company": "Muebles Ana SL",  # never said
        "interest": "sofá",
        "budget": "900 euros",
    }
    assert lead_values(model, said) == {
        "name": "Ana García",
        "email": "ana@example.com",
        "interest": "sofá",
        "budget": "900 euros",
    }
    assert not said_by_customer("1200 euros", said)
    assert not said_by_customer("ana@otro.com", said)
    assert lead_values("not a dict", "my name is Tom") == {"name": "Tom"}


def test_business_hours_in_the_agents_time_zone():
    agent = Agent(
        hours_start=time(9),
        hours_end=time(18),
        business_days=[1, 2, 3, 4, 5],
        timezone="Europe/Madrid",
    )
    wednesday_10_madrid = datetime(2026, 11, 25, 9, 0, tzinfo=UTC)  # 10:00 in Madrid
    wednesday_19_madrid = datetime(2026, 11, 25, 18, 0, tzinfo=UTC)
    saturday_noon = datetime(2026, 11, 28, 11, 0, tzinfo=UTC)
    assert not outside_business_hours(agent, wednesday_10_madrid)
    assert outside_business_hours(agent, wednesday_19_madrid)
    assert outside_business_hours(agent, saturday_noon)
    night_shift = Agent(hours_start=time(22), hours_end=time(6), timezone="UTC")
    assert not outside_business_hours(night_shift, datetime(2026, 11, 25, 23, 0, tzinfo=UTC))
    assert outside_business_hours(night_shift, datetime(2026, 11, 25, 12, 0, tzinfo=UTC))


def test_a_reply_that_repeats_the_prompt_is_detected():
    agent = Agent(
        name="Sofía",
        instructions="Never offer the outlet prices of the warehouse in Getafe to new customers.",
        persona="",
    )
    system = system_prompt(agent=agent, business_name="Alpha", language="es")
    assert agent.instructions in system and GUARDRAILS in system
    assert leaks_prompt(reply="Sure! " + GUARDRAILS[200:420], agent=agent, system=system)
    assert leaks_prompt(
        reply="My rules say: never offer the outlet prices of the warehouse in Getafe.",
        agent=agent,
        system=system,
    )
    assert not leaks_prompt(
        reply="El sofá Oslo cuesta 899 euros y el envío es gratis en Madrid.",
        agent=agent,
        system=system,
    )


def test_trim_reply_cuts_at_a_sentence():
    text = "Primera frase corta. Segunda frase algo más larga que la primera. Tercera."
    assert (
        trim_reply(text, 70) == "Primera frase corta. Segunda frase algo más larga que la primera."
    )
    # Losing more than half the room to reach a sentence end: cut at a word instead.
    assert trim_reply(text, 60) == "Primera frase corta. Segunda frase algo más larga que la…"
    assert trim_reply("palabra " * 20, 50).endswith("…")
    assert trim_reply("corto", 50) == "corto"
