"""Cross-language end to end, every part real except WhatsApp itself: the gateway-node process
(bin/gateway.js with its Redis-driven fake WhatsApp, GATEWAY_FAKE_WHATSAPP=1), Valkey, the
`manage.py consume_inbound` process, a Celery worker and PostgreSQL.

The data these processes share must be committed: the test's own connection sits in the
per-test transaction, so every write the other processes must see runs through ``committed()``
(another thread, hence another connection, in autocommit), and the fixture deletes it at the end.
"""

from __future__ import annotations

import hashlib
import json
import signal
import time
import uuid

import psycopg
import pytest
import redis
from django.test import Client
from django_tenants.utils import tenant_context

from apps.accounts.models import User
from apps.channels import contract, services
from apps.channels.models import WhatsAppSession
from apps.channels.tests.conftest import (
    FAKE_SENT,
    ROOT,
    committed,
    database_url,
    drive,
    in_alpha,
    inbound_drained,
    started_session,
    wait_for,
)
from apps.conversations.models import Message
from apps.conversations.services import staff_message_send
from apps.ops.models import DeadLetter

pytestmark = pytest.mark.django_db


def connected_session(world, e2e) -> WhatsAppSession:
    """A number connected the way an owner does it: start, QR shown in the dashboard, scan."""
    streams = e2e["streams"]
    session = in_alpha(world, lambda: services.whatsapp_session_create(label="E2E"))
    e2e["sessions"].append(session.session_id)
    # Autocommit: the start command is published at once.
    in_alpha(world, lambda: services.whatsapp_session_start(session=session))
    sid = session.session_id

    def status() -> WhatsAppSession:
        return in_alpha(world, lambda: WhatsAppSession.objects.get(session_id=sid))

    # The gateway's "starting" travels back through the consumer before any QR.
    wait_for(lambda: status().status == "starting", what="the session starting", timeout=20)
    drive(streams, session_id=sid, action="qr", qr="2@e2e-pairing-code,abc")
    wait_for(lambda: status().qr == "2@e2e-pairing-code,abc", what="the QR in the database")
    owner = Client(HTTP_HOST=world.owner_a.host)
    owner.post("/login/", {"username": world.owner_a.email, "password": world.owner_a.password})
    panel = owner.get(f"/whatsapp/{session.pk}/status/", HTTP_HX_REQUEST="true")
    assert b"<svg" in panel.content  # the dashboard shows the gateway's QR
    drive(streams, session_id=sid, action="scan")
    session = wait_for(
        lambda: (s := status()).status == "ready" and s, what="the session ready", timeout=20
    )
    assert session.phone == "5215500000042" and session.qr == ""
    return session


def pending_on(streams, consumer: str) -> int:
    """Entries read but not acknowledged by one consumer (0 before its group exists)."""
    try:
        consumers = streams.xinfo_consumers(contract.inbound_stream(), contract.INBOUND_GROUP)
    except redis.ResponseError:  # NOGROUP: the consumer process has not started reading yet
        return 0
    return sum(int(c["pending"]) for c in consumers if c["name"] == consumer)


def test_customer_text_in_staff_reply_out_delivered_ack_back(world, e2e):
    streams = e2e["streams"]
    e2e["consumer"]("e2e-1")
    e2e["gateway"](FAKE_WA_REQUIRE_QR="1")
    session = connected_session(world, e2e)
    sid = session.session_id
    customer = f"52155{uuid.uuid4().int % 10**8:08d}@c.us"
    e2e["wa_ids"].append(customer)

    # The same WhatsApp message published twice, a malformed entry, an unknown session.
    for _ in range(2):
        drive(
            streams,
            session_id=sid,
            action="receive",
            id="E2EDUP1",
            **{"from": customer},
            body="Hola, ¿cuánto cuesta el plan Pro?",
            notify_name="Ana",
        )
    malformed_id = streams.xadd(contract.inbound_stream(), {"event": "{broken"})
    ghost = json.loads((ROOT / "contracts/streams/examples/inbound/message.json").read_text())
    ghost.update(session_id="ghost-session", tenant_schema="alpha", event_id=str(uuid.uuid4()))
    ghost_id = streams.xadd(contract.inbound_stream(), {"event": json.dumps(ghost)})

    def stored() -> list[Message]:
        return in_alpha(
            world,
            lambda: list(
                Message.objects.select_related("conversation").filter(
                    conversation__contact__wa_id=customer, direction="in"
                )
            ),
        )

    wait_for(lambda: len(stored()) >= 1, what="the customer's message stored")
    wait_for(lambda: inbound_drained(streams), what="the inbound stream drained")
    messages = stored()
    assert len(messages) == 1  # the duplicate wa_id was stored once
    assert messages[0].text == "Hola, ¿cuánto cuesta el plan Pro?"
    assert messages[0].conversation.channel_ref == sid
    letters = {
        d.payload["entry_id"]: d.exception_type
        for d in committed(lambda: list(DeadLetter.objects.filter(name__startswith="consume")))
    }
    assert letters[malformed_id] == "invalid_event" and letters[ghost_id] == "unknown_session"

    # Staff answer from the inbox: stored, delivered by the Celery worker to the gateway,
    # "sent" by the fake WhatsApp, and its ack comes back as delivered.
    reply = in_alpha(
        world,
        lambda: staff_message_send(
            conversation_id=messages[0].conversation_id,
            author=User.objects.get(email=world.staff_a.email),
            text="20 USD al mes, Ana",
        ),
    )

    def sent() -> dict | None:
        for _id, fields in streams.xrange(FAKE_SENT):
            record = json.loads(fields["event"])
            if record.get("text") == "20 USD al mes, Ana":
                return record
        return None

    record = wait_for(sent, what="the fake WhatsApp's sendMessage")
    assert (record["session_id"], record["chat_id"]) == (sid, customer)

    def delivered() -> Message | None:
        message = in_alpha(world, lambda: Message.objects.get(pk=reply.pk))
        return message if message.status == "delivered" else None

    message = wait_for(delivered, what="the delivered ack")
    assert message.external_id == record["wa_id"] and message.command_event_id is not None


def test_staff_send_a_picture_the_gateway_sends_its_bytes_and_the_ack_comes_back(
    world, e2e, settings, tmp_path
):
    """A file from the inbox: stored in the media folder the gateway shares, published as
    ``send_media`` with its key and sha256, read and checked by the gateway, sent."""
    from django.core.files.uploadedfile import SimpleUploadedFile

    from apps.conversations.tests.test_media_view import png

    settings.MEDIA_ROOT = tmp_path / "media"  # the e2e gateway's MEDIA_ROOT
    streams = e2e["streams"]
    e2e["consumer"]("e2e-media")
    e2e["gateway"]()
    sid = started_session(world, e2e, "E2E media")
    customer = f"52166{uuid.uuid4().int % 10**8:08d}@c.us"
    e2e["wa_ids"].append(customer)
    drive(streams, session_id=sid, action="receive", **{"from": customer}, body="¿Una foto?")
    asked = wait_for(
        lambda: in_alpha(
            world, lambda: Message.objects.filter(conversation__contact__wa_id=customer).first()
        ),
        what="the customer's message stored",
    )
    picture = png(6, 4)
    reply = in_alpha(
        world,
        lambda: staff_message_send(
            conversation_id=asked.conversation_id,
            author=User.objects.get(email=world.staff_a.email),
            text="Aquí está",
            attachment=SimpleUploadedFile("sofá.png", picture),
            attachment_name="sofá.png",
        ),
    )

    def sent() -> dict | None:
        for _id, fields in streams.xrange(FAKE_SENT):
            record = json.loads(fields["event"])
            if record.get("chat_id") == customer and record.get("media"):
                return record
        return None

    record = wait_for(sent, what="the fake WhatsApp's sendMessage with the picture")
    assert record["media"] == {
        "mimetype": "image/png",
        "size": len(picture),
        "sha256": hashlib.sha256(picture).hexdigest(),
        "filename": "sofá.png",
    }
    assert record["options"]["caption"] == "Aquí está"
    wait_for(
        lambda: in_alpha(world, lambda: Message.objects.get(pk=reply.pk)).status == "delivered",
        what="the delivered ack",
    )


def test_a_consumer_killed_between_read_and_ack_is_replaced_and_the_message_stored_once(world, e2e):
    streams = e2e["streams"]
    first = e2e["consumer"]("e2e-doomed")
    e2e["gateway"]()
    sid = started_session(world, e2e, "E2E crash")
    customer = f"52166{uuid.uuid4().int % 10**8:08d}@c.us"
    e2e["wa_ids"].append(customer)

    # Hold the contact's advisory lock: the consumer reads the entry, enters its transaction
    # and waits there, between XREADGROUP and XACK, where it is killed.
    blocker = psycopg.connect(database_url())
    try:
        blocker.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", [f"contact:{customer}"])
        drive(streams, session_id=sid, action="receive", **{"from": customer}, body="¿Hay stock?")

        wait_for(
            lambda: pending_on(streams, "e2e-doomed"), what="the entry read by the doomed consumer"
        )
        time.sleep(0.3)
        first.stop(signal.SIGKILL)
    finally:
        blocker.rollback()
        blocker.close()

    e2e["consumer"]("e2e-successor")

    def stored() -> list[Message]:
        return in_alpha(
            world, lambda: list(Message.objects.filter(conversation__contact__wa_id=customer))
        )

    wait_for(lambda: stored() and inbound_drained(streams), what="the reclaimed entry stored")
    time.sleep(2)  # one more reclaim round: still exactly one
    messages = stored()
    assert [(m.direction, m.text) for m in messages] == [("in", "¿Hay stock?")]
    with tenant_context(world.tenant_b):
        assert not Message.objects.filter(conversation__contact__wa_id=customer).exists()


def test_sigterm_lets_the_consumer_finish_the_entry_in_hand_then_exit(world, e2e):
    from apps.channels.tests.conftest import text_message, xadd_event

    streams = e2e["streams"]
    consumer = e2e["consumer"]("e2e-term")
    session = in_alpha(world, lambda: services.whatsapp_session_create(label="E2E term"))
    e2e["sessions"].append(session.session_id)
    customer = f"52188{uuid.uuid4().int % 10**8:08d}@c.us"
    e2e["wa_ids"].append(customer)
    event = text_message(
        session_id=session.session_id, tenant_schema="alpha", body="¿Siguen abiertos?"
    )
    event.update(chat_id=customer, **{"from": customer})
    blocker = psycopg.connect(database_url())
    try:
        # The consumer is inside its transaction for this entry when SIGTERM arrives.
        blocker.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", [f"contact:{customer}"])
        xadd_event(streams, event)

        # This consumer's own pending count: another consumer's leftovers do not count.
        wait_for(lambda: pending_on(streams, "e2e-term"), what="the entry in hand")
        consumer.proc.send_signal(signal.SIGTERM)
        time.sleep(0.5)
        assert consumer.proc.poll() is None  # still finishing the entry
    finally:
        blocker.rollback()
        blocker.close()
    assert consumer.proc.wait(timeout=20) == 0
    assert consumer.logged("stopped after 1 entries")
    assert inbound_drained(streams)
    stored = in_alpha(
        world, lambda: list(Message.objects.filter(external_id=event["wa_id"]).values("text"))
    )
    assert stored == [{"text": "¿Siguen abiertos?"}]
