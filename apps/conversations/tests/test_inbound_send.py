"""inbound_messages_send outside a transaction (as the WhatsApp consumer calls it): the statement
is sent and runs in PostgreSQL while the caller goes on; records() waits for it. Run on a
connection of its own (a thread) and committed, as the consumer's are; cleaned up afterwards."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
from django.db import DataError, OperationalError, ProgrammingError, connection
from django.utils import timezone
from django_tenants.utils import tenant_context

from apps.conversations.models import Contact, Message
from apps.conversations.services import InboundMessage, inbound_messages_send
from conftest import database_url_for_subprocess, on_own_connection

pytestmark = pytest.mark.django_db


@pytest.fixture
def customer(world) -> Iterator[str]:
    wa_id = f"34611{uuid.uuid4().int % 10**7:07d}@c.us"
    yield wa_id

    def clean() -> None:
        with tenant_context(world.tenant_a):
            Contact.objects.filter(wa_id=wa_id).delete()

    on_own_connection(clean)


def item(wa_id: str, text: str, *, external_id: str | None = None) -> InboundMessage:
    return InboundMessage(
        channel="whatsapp",
        channel_ref="session-1",
        contact_wa_id=wa_id,
        contact_phone=None,
        contact_name="Ana",
        external_id=external_id or f"wamid.{uuid.uuid4().hex}",
        kind="text",
        text=text,
        media=None,
        sent_at=timezone.now(),
    )


def test_sending_returns_while_postgresql_stores_and_records_waits_for_it(world, customer):
    # Another session holds the customer's advisory lock, so the statement cannot finish.
    blocker = psycopg.connect(database_url_for_subprocess())
    blocker.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", [f"contact:{customer}"])
    message = item(customer, "¿Tienen el sofá en gris?")

    def work() -> dict[str, Any]:
        with tenant_context(world.tenant_a):
            storing = inbound_messages_send(items=[message], wait_for_disk=False)
            seen: dict[str, Any] = {}
            # Sent, not finished: nothing is stored yet, and the connection is busy with it.
            seen["stored while blocked"] = blocker.execute(
                "SELECT count(*) FROM alpha.conversations_message WHERE external_id = %s",
                [message.external_id],
            ).fetchone()[0]
            try:
                Message.objects.count()
            except OperationalError as exc:
                seen["busy"] = str(exc)
            blocker.rollback()  # the lock goes; the statement finishes
            records = storing.records()
            seen["records"] = [(r.created, r.message.text, r.message.pk) for r in records]
            seen["stored"] = list(
                Message.objects.filter(external_id=message.external_id).values_list("pk", "text")
            )
            return seen

    try:
        seen = on_own_connection(work)
    finally:
        blocker.close()
    assert seen["stored while blocked"] == 0
    assert "another command is already in progress" in seen["busy"]
    [(created, text, pk)] = seen["records"]
    assert created and text == "¿Tienen el sofá en gris?"
    assert seen["stored"] == [(pk, "¿Tienen el sofá en gris?")]
    with tenant_context(world.tenant_b):
        assert not Message.objects.filter(external_id=message.external_id).exists()


def test_a_refused_statement_raises_when_waited_for_and_the_connection_stays_usable(
    world, customer
):
    good = item(customer, "hola")
    refused = item(customer, "demasiado largo", external_id="wamid." + "x" * 300)

    def work() -> tuple[list[int], int]:
        with tenant_context(world.tenant_a):
            storing = inbound_messages_send(items=[good, refused])
            with pytest.raises(DataError, match="too long"):
                storing.records()
            # The statement was its own transaction: nothing of it stays, and the next works.
            ids = [good.external_id, refused.external_id]
            left = list(Message.objects.filter(external_id__in=ids).values_list("pk", flat=True))
            return left, inbound_messages_send(items=[good]).records()[0].message.pk

    left, stored = on_own_connection(work)
    assert left == []
    assert stored > 0
    with tenant_context(world.tenant_a):
        # Committed by the other connection, visible here.
        assert connection.in_atomic_block
        assert Message.objects.get(pk=stored).text == "hola"


def test_the_prepared_statement_follows_the_tenant_and_is_prepared_again_after_a_reconnect(world):
    """The storing statement is prepared once per connection; a consumer's connection moves
    between tenants' schemas and is replaced after an error or CONN_MAX_AGE."""
    wa_id = f"34622{uuid.uuid4().int % 10**7:07d}@c.us"
    tenants = [world.tenant_a, world.tenant_b, world.tenant_a]

    def work() -> dict[str, Any]:
        seen: dict[str, Any] = {}
        for tenant in tenants:
            with tenant_context(tenant):
                message = item(wa_id, f"hola {tenant.schema_name}")
                assert inbound_messages_send(items=[message]).records()[0].created
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT count(*) FROM pg_prepared_statements WHERE name LIKE 'eva_inbound_%%'"
            )
            seen["prepared"] = cursor.fetchone()[0]
        connection.close()  # the next statement goes over a new connection
        with tenant_context(world.tenant_b):
            assert inbound_messages_send(items=[item(wa_id, "otra vez")]).records()[0].created
        return seen

    def clean() -> None:
        for tenant in (world.tenant_a, world.tenant_b):
            with tenant_context(tenant):
                Contact.objects.filter(wa_id=wa_id).delete()

    def texts(tenant: Any) -> list[str]:
        with tenant_context(tenant):
            query = Message.objects.filter(conversation__contact__wa_id=wa_id).order_by("pk")
            return list(query.values_list("text", flat=True))

    try:
        seen = on_own_connection(work)
        # Each message is in the schema it was sent to, and only there.
        assert texts(world.tenant_a) == ["hola alpha", "hola alpha"]
        assert texts(world.tenant_b) == ["hola beta", "otra vez"]
    finally:
        on_own_connection(clean)
    assert seen["prepared"] == 1


def test_after_a_refusal_the_statement_is_prepared_again(world, customer):
    """A prepared statement PostgreSQL no longer has (here dropped; in production a deployment
    that replaced the storing function can leave it unusable) fails one read, not every read
    after it."""

    def work() -> dict[str, Any]:
        seen: dict[str, Any] = {}
        with tenant_context(world.tenant_a):
            assert inbound_messages_send(items=[item(customer, "uno")]).records()[0].created
            with connection.cursor() as cursor:
                cursor.execute("DEALLOCATE ALL")
            refused = inbound_messages_send(items=[item(customer, "dos")])
            with pytest.raises(ProgrammingError, match="does not exist"):
                refused.records()
            seen["after"] = inbound_messages_send(items=[item(customer, "tres")]).records()
            seen["texts"] = list(
                Message.objects.filter(conversation__contact__wa_id=customer)
                .order_by("pk")
                .values_list("text", flat=True)
            )
        return seen

    seen = on_own_connection(work)
    assert [record.created for record in seen["after"]] == [True]
    assert seen["texts"] == ["uno", "tres"]
