"""The demo tenant's ready-made agent and price list, so `make run` shows a working agent.

Used by ``manage.py seed_demo``; both functions are idempotent (the agent is found by name,
the document by its content hash in the knowledge app).
"""

from __future__ import annotations

from django.core.files.base import ContentFile

from apps.accounts.models import User
from apps.agents.models import Agent
from apps.agents.services import agent_create

DEMO_AGENT_NAME = "Eva"
DEMO_CATALOGUE_NAME = "demo-catalogo.md"
DEMO_CATALOGUE = """\
# Demo Store: catálogo y precios 2026

## Sofás
El sofá Oslo de tres plazas cuesta 899 euros. Está tapizado en lino gris o azul.
El sofá cama Bergen cuesta 649 euros e incluye colchón de 14 cm.

## Mesas
La mesa de comedor Nórdica de roble macizo cuesta 520 euros y es para seis personas.

## Envíos y pagos
El envío es gratis en Madrid y Barcelona; al resto de la península cuesta 39 euros.
La entrega tarda de 3 a 5 días laborables.
Aceptamos tarjeta, transferencia y pago en tres plazos sin intereses.

## Devoluciones y garantía
Tienes 30 días para devolver un producto sin usar.
Todos los sofás tienen 5 años de garantía en la estructura.

## Showroom
Nuestro showroom está en la calle Mayor 10, Madrid, de lunes a sábado de 10:00 a 20:00.

# Shipping in English
Delivery is free in Madrid and Barcelona and takes 3 to 5 working days.
The Oslo three-seat sofa costs 899 euros.
"""


def demo_agent_ensure() -> tuple[Agent, bool]:
    """The demo's sales agent (created once; later edits in the dashboard are kept)."""
    existing = Agent.objects.filter(name=DEMO_AGENT_NAME).first()
    if existing is not None:
        return existing, False
    agent = agent_create(
        name=DEMO_AGENT_NAME,
        persona="Eva, la asistente de ventas de Demo Store, una tienda de muebles en Madrid.",
        tone=Agent.Tone.FRIENDLY,
        instructions=(
            "Ayuda a elegir muebles, comparte precios del catálogo y ofrece visitar el "
            "showroom. Si el cliente está interesado, pide su nombre y su correo."
        ),
        sales_goals=[
            Agent.Goal.QUALIFY,
            Agent.Goal.SHARE_PRICES,
            Agent.Goal.BOOK_VISIT,
            Agent.Goal.COLLECT_EMAIL,
        ],
        greeting="¡Hola! Soy Eva, de Demo Store. ¿Qué mueble buscas?",
        handoff_keywords=["reclamación", "queja"],
        is_default=True,
    )
    return agent, True


def demo_catalogue_ensure(*, owner: User | None) -> tuple[int, bool]:
    """Upload the demo price list (the knowledge app queues its ingestion); returns its id and
    whether it was new. The same content again is the same document."""
    from apps.knowledge.services import document_upload

    outcome = document_upload(
        uploaded_by=owner,
        upload=ContentFile(DEMO_CATALOGUE.encode(), name=DEMO_CATALOGUE_NAME),
        title="Catálogo y precios (demo)",
    )
    return outcome.document.pk, outcome.created
