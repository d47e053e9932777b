"""Storing customer messages: idempotent on the channel's id, contacts and conversations made on
first contact, opt-out words, delivery statuses that only move forward, transcripts, and the
business typing on its own phone. Everything in tenant A is invisible from tenant B."""

from __future__ import annotations

import uuid
from datetime import timedelta

import pytest
from django.core.exceptions import ValidationError
from django.utils import timezone
from django_tenants.utils import tenant_context

from apps.conversations.models import Contact, Conversation, Message
from apps.conversations.services import (
    InboundMessage,
    business_message_record,
    conversation_handoff,
    durability_position,
    inbound_message_record,
    inbound_messages_record,
    message_delivery_ack,
    message_status_update,
    message_transcript_set,
    opt_out_requested,
)

pytestmark = pytest.mark.django_db


def record(wa_id: str, text: str, *, external_id: str | None = None, kind: str = "text", **kw):
    return inbound_message_record(
        channel=kw.pop("channel", "whatsapp"),
        channel_ref=kw.pop("channel_ref", "session-1"),
        contact_wa_id=wa_id,
        contact_phone=kw.pop("phone", "+34600111222"),
        contact_name=kw.pop("name", "Ana"),
        external_id=external_id or f"wamid.{uuid.uuid4().hex}",
        kind=kind,
        text=text,
        media=kw.pop("media", None),
        sent_at=timezone.now(),
        **kw,
    )


def test_a_redelivered_message_is_stored_once_and_other_tenants_see_nothing(world):
    with tenant_context(world.tenant_a):
        first = record("34600111222@c.us", "Hola, ¿precio del sofá?", external_id="wamid.DUP1")
        again = record("34600111222@c.us", "Hola, ¿precio del sofá?", external_id="wamid.DUP1")
        assert first.created and not again.created
        assert again.message.pk == first.message.pk
        assert Message.objects.filter(external_id="wamid.DUP1").count() == 1
        conversation = Conversation.objects.get(pk=first.conversation.pk)
        assert conversation.unread_count == 1
        assert conversation.mode == "bot" and conversation.channel == "whatsapp"
        contact = conversation.contact
        assert (contact.phone, contact.name, contact.stage) == ("+34600111222", "Ana", "new")
        assert contact.first_contact_at is not None

        second = record("34600111222@c.us", "¿Y el envío?")
        assert second.conversation.pk == conversation.pk
        assert Contact.objects.filter(wa_id="34600111222@c.us").count() == 1

    with tenant_context(world.tenant_b):
        assert not Message.objects.filter(external_id="wamid.DUP1").exists()
        assert not Contact.objects.filter(wa_id="34600111222@c.us").exists()
        # The same WhatsApp id in tenant B is a different customer record of B's own.
        mine = record("34600111222@c.us", "hello", external_id="wamid.DUP1")
        assert mine.created
    with tenant_context(world.tenant_a):
        assert Message.objects.get(external_id="wamid.DUP1").text == "Hola, ¿precio del sofá?"


@pytest.mark.parametrize(
    ("text", "stops"),
    [
        ("STOP", True),
        ("baja", True),
        ("Por favor no me escriban más", True),
        ("Baja.", True),
        ("¿Cuándo baja el precio?", False),
        ("don't stop now, tell me the price", False),
    ],
)
def test_opt_out_words(text, stops):
    assert opt_out_requested(text) is stops


def test_opt_out_marks_the_contact_and_start_opts_back_in(world):
    with tenant_context(world.tenant_a):
        r = record("34600999000@c.us", "No me escriban más")
        contact = Contact.objects.get(pk=r.conversation.contact_id)
        assert contact.opted_out and contact.opted_out_at is not None
        record("34600999000@c.us", "START")
        contact.refresh_from_db()
        assert not contact.opted_out and contact.opted_out_at is None


def test_delivery_status_only_moves_forward_and_failed_is_final(world):
    with tenant_context(world.tenant_a):
        r = record("34600222333@c.us", "hola")
        out = Message.objects.create(
            conversation=r.conversation,
            direction="out",
            sender="bot",
            text="¡Hola!",
            status="queued",
            command_event_id=uuid.uuid4(),
        )
        # The first ack links the WhatsApp id via the command's event id.
        assert message_delivery_ack(
            command_event_id=str(out.command_event_id), external_id="wamid.OUT1", status="sent"
        )
        assert message_status_update(external_id="wamid.OUT1", status="read")
        assert not message_status_update(external_id="wamid.OUT1", status="delivered")
        assert not message_status_update(external_id="wamid.OUT1", status="read")
        out.refresh_from_db()
        assert (out.external_id, out.status) == ("wamid.OUT1", "read")
        assert not message_status_update(external_id="wamid.unknown", status="read")
        assert message_status_update(external_id="wamid.OUT1", status="error", error="boom")
        assert not message_status_update(external_id="wamid.OUT1", status="read")
        out.refresh_from_db()
        assert out.status == "failed"
    with tenant_context(world.tenant_b):
        assert not message_status_update(external_id="wamid.OUT1", status="delivered")


def test_a_voice_note_transcript_becomes_its_text(world):
    media = {"ref": "alpha/whatsapp/s/2026/11/abc.ogg", "mime": "audio/ogg", "size": 10}
    with tenant_context(world.tenant_a):
        r = record("34600333444@c.us", "", kind="audio", media=media)
        message = message_transcript_set(
            message_id=r.message.pk, transcript=" quiero el sofá azul ", language="es"
        )
        assert (message.body, message.transcript_language) == ("quiero el sofá azul", "es")
        assert Conversation.objects.get(pk=r.conversation.pk).last_message_preview == (
            "quiero el sofá azul"
        )
        stop = record("34600333444@c.us", "", kind="audio", media=media)
        message_transcript_set(message_id=stop.message.pk, transcript="Stop", language="en")
        assert Contact.objects.get(pk=r.conversation.contact_id).opted_out


def test_business_typing_on_its_phone_hands_over_for_a_while(world, settings):
    settings.EVA_HUMAN_HOLD_MINUTES = 30
    with tenant_context(world.tenant_a):
        r = record("34600444555@c.us", "hola")
        echo = business_message_record(
            channel_ref="session-1",
            contact_wa_id="34600444555@c.us",
            contact_phone=None,
            external_id="wamid.PHONE1",
            kind="text",
            text="Hola Ana, soy Luis de la tienda",
            media=None,
            sent_at=timezone.now(),
        )
        assert echo.created and echo.conversation.pk == r.conversation.pk
        conversation = Conversation.objects.get(pk=r.conversation.pk)
        assert conversation.mode == "human"
        assert conversation.human_until is not None
        assert conversation.human_until > timezone.now() + timedelta(minutes=29)
        assert echo.message.sender == "business" and echo.message.direction == "out"

        # After the hold, the next customer message finds the bot in charge again.
        Conversation.objects.filter(pk=conversation.pk).update(
            human_until=timezone.now() - timedelta(seconds=1)
        )
        record("34600444555@c.us", "¿sigue ahí?")
        assert Conversation.objects.get(pk=conversation.pk).mode == "bot"


def test_handoff_by_staff_is_open_ended(world):
    with tenant_context(world.tenant_a):
        r = record("34600555666@c.us", "hola")
        conversation_handoff(conversation_id=r.conversation.pk, reason="customer asked")
        record("34600555666@c.us", "¿hola?")
        conversation = Conversation.objects.get(pk=r.conversation.pk)
        assert conversation.mode == "human" and conversation.human_until is None
        assert conversation.messages.filter(kind="system").exists()


def item(wa_id: str, text: str, *, external_id: str | None = None, **kw) -> InboundMessage:
    return InboundMessage(
        channel=kw.pop("channel", "whatsapp"),
        channel_ref=kw.pop("channel_ref", "session-1"),
        contact_wa_id=wa_id,
        contact_phone=kw.pop("phone", None),
        contact_name=kw.pop("name", None),
        external_id=external_id or f"wamid.{uuid.uuid4().hex}",
        kind=kw.pop("kind", "text"),
        text=text,
        media=kw.pop("media", None),
        sent_at=timezone.now(),
        **kw,
    )


VOICE_NOTE = {"ref": "a/1.ogg", "mime": "audio/ogg", "size": 3, "sha256": "0" * 64}


def test_a_batch_is_stored_in_order_with_one_contact_and_conversation_per_customer(world):
    with tenant_context(world.tenant_a):
        known = record("34600100100@c.us", "primero", name="", phone=None)
        Conversation.objects.filter(pk=known.conversation.pk).update(mode="closed")
        batch = [
            item("34600100100@c.us", "¿siguen abiertos?", name="Luz", phone="+34600100100"),
            item("34600200200@c.us", "hola", name="Pablo", external_id="wamid.B1"),
            item("34600100100@c.us", "quería el sofá"),
            item("34600200200@c.us", "hola", external_id="wamid.B1"),  # the same id again
            item("34600300300@c.us", "STOP"),
            item(
                "34600100100@c.us",
                "",
                kind="audio",
                media={"ref": "a/1.ogg", "mime": "audio/ogg", "size": 3, "sha256": "0" * 64},
            ),
        ]
        records = inbound_messages_record(items=batch)

        assert [r.created for r in records] == [True, True, True, False, True, True]
        assert records[3].message.pk == records[1].message.pk
        ids = [r.message.pk for r in records if r.created]
        assert ids == sorted(ids)  # arrival order
        stored = Message.objects.get(pk=records[5].message.pk)
        assert (stored.kind, stored.media["ref"], stored.direction) == ("audio", "a/1.ogg", "in")

        luz = Conversation.objects.get(pk=known.conversation.pk)
        # Reopened by the new messages, three more unread, the newest one previewed.
        assert (luz.mode, luz.unread_count, luz.last_message_preview) == ("bot", 4, "[Audio]")
        assert luz.contact.name == "Luz" and luz.contact.phone == "+34600100100"
        assert {records[n].message.conversation_id for n in (0, 2, 5)} == {luz.pk}
        pablo = Contact.objects.get(wa_id="34600200200@c.us")
        assert pablo.name == "Pablo" and pablo.conversations.get().unread_count == 1
        assert Contact.objects.get(wa_id="34600300300@c.us").opted_out
        assert Contact.objects.filter(wa_id__startswith="34600").count() == 3

        # The whole batch again (a consumer that died before acknowledging it): nothing new.
        again = inbound_messages_record(items=batch)
        assert not any(r.created for r in again)
        assert [r.message.pk for r in again] == [r.message.pk for r in records]
        assert Conversation.objects.get(pk=luz.pk).unread_count == 4
    with tenant_context(world.tenant_b):
        assert not Message.objects.exists() and not Contact.objects.exists()


def test_a_batch_with_an_invalid_item_stores_nothing(world):
    with tenant_context(world.tenant_a):
        with pytest.raises(ValidationError):
            inbound_messages_record(
                items=[
                    item("34600700700@c.us", "hola"),
                    item("34600700700@c.us", "x", kind="sticker"),
                ]
            )
        assert not Contact.objects.filter(wa_id="34600700700@c.us").exists()


def test_a_contact_known_by_an_alias_gets_the_message(world):
    with tenant_context(world.tenant_a):
        ana = Contact.objects.create(wa_id="34600800800@c.us", wa_ids=["99887766@lid"], name="Ana")
        r = inbound_messages_record(items=[item("99887766@lid", "soy Ana desde otro id")])[0]
        assert r.created and r.conversation.contact_id == ana.pk
        assert not Contact.objects.filter(wa_id="99887766@lid").exists()


def test_an_asynchronous_commit_reaches_the_disk_without_anyone_waiting_for_it(world):
    """What the WhatsApp consumer relies on to acknowledge without waiting for the disk: after a
    commit that did not wait (the consumer's), durability_position() reports a log end that the
    log on disk reaches on its own (PostgreSQL's WAL writer)."""
    import time

    import psycopg

    from conftest import database_url_for_subprocess

    before, _ = durability_position()
    # A commit elsewhere (this test's own transaction never commits), not waiting for the disk.
    with psycopg.connect(database_url_for_subprocess(), autocommit=True) as other:
        other.execute("SET synchronous_commit = off")
        other.execute("SELECT txid_current()")  # a transaction with an id: a commit record
    written, on_disk = durability_position()
    assert written > before and on_disk <= written  # the disk never holds more than the log
    deadline = time.monotonic() + 10
    while on_disk < written and time.monotonic() < deadline:
        time.sleep(0.02)
        _, on_disk = durability_position()
    assert on_disk >= written


def test_nul_characters_are_dropped_instead_of_refusing_the_message(world):
    """PostgreSQL's text cannot hold NUL, and its JSON refuses the whole batch for one: a
    customer's text (or a file name) carrying one is stored without it."""
    with tenant_context(world.tenant_a):
        records = inbound_messages_record(
            items=[
                item("34600900900@c.us", "hola\x00 ¿precio?", name="A\x00na"),
                item(
                    "34600900900@c.us",
                    "",
                    kind="document",
                    media={
                        "ref": "a/2.pdf",
                        "mime": "application/pdf",
                        "size": 3,
                        "sha256": "0" * 64,
                        "filename": "lista\x00.pdf",
                    },
                ),
            ]
        )
        assert all(r.created for r in records)
        first, second = (Message.objects.get(pk=r.message.pk) for r in records)
        assert first.text == records[0].message.text == "hola ¿precio?"
        assert second.media["filename"] == "lista.pdf"
        assert Contact.objects.get(wa_id="34600900900@c.us").name == "Ana"
