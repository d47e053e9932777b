"""manage.py consume_inbound's machinery on a real Valkey stream and real PostgreSQL: consumer
group, tenant resolution from the public index, idempotent storage, XACK after commit, XAUTOCLAIM
of a dead consumer's entries, dead letters for poison entries (never dropped), safe trimming."""

from __future__ import annotations

import json
import uuid

import pytest
import redis
from django.db import connection
from django.utils import timezone
from django_tenants.utils import tenant_context

from apps.channels import contract, services
from apps.channels.consumer import InboundConsumer, trim_consumed
from apps.channels.inbound import InboundEventHandler
from apps.channels.management.commands.consume_inbound import record_dead_letter
from apps.channels.models import WhatsAppSession
from apps.channels.tests.conftest import inbound_event, text_message, xadd_event
from apps.conversations.models import Contact, Conversation, Message
from apps.conversations.services import message_command_assign, staff_message_send
from apps.ops.models import DeadLetter

pytestmark = pytest.mark.django_db


class Hooks:
    def __init__(self) -> None:
        self.replies: list[int] = []
        self.voice: list[int] = []

    def handler(self) -> InboundEventHandler:
        return InboundEventHandler(
            on_customer_text=lambda m: self.replies.append(m.pk),
            on_voice_note=lambda m: self.voice.append(m.pk),
        )


def make_consumer(client, handler, name="c1", **kw) -> InboundConsumer:
    # The command hands whole reads to InboundEventHandler.submit_batch (a read is finished
    # after the next one is read); plain functions (a failing handler) go one entry at a time.
    if isinstance(handler, InboundEventHandler):
        # As the command runs it: messages commit without waiting for the disk, entries are
        # acknowledged once the log on disk covers them, or after make_durable() when idle.
        handler.wait_for_disk = False
        kw["submit_handler"] = handler.submit_batch
        kw["make_durable"] = handler.make_durable
        kw["durable_position"] = handler.durable_position
    else:
        kw["handler"] = handler
    consumer = InboundConsumer(
        client=client,
        dead_letter=lambda dead: None,
        consumer=name,
        block_ms=50,
        claim_idle_ms=kw.pop("claim_idle_ms", 60000),
        max_deliveries=kw.pop("max_deliveries", 3),
        trim_every_s=0,
        **kw,
    )
    consumer.dead_letter = record_dead_letter(consumer.stream)
    consumer.ensure_group()
    return consumer


@pytest.fixture
def session_a(world):
    with tenant_context(world.tenant_a):
        return services.whatsapp_session_create(label="Ventas")


def voice_note_event(session, **changes) -> dict:
    """The contract's example voice note for ``session``, with a WhatsApp id of its own."""
    event = inbound_event("message", session_id=session.session_id, tenant_schema="alpha")
    return event | {"wa_id": f"false_x@c.us_{uuid.uuid4().hex}"} | changes


def consumed(streams, capture_on_commit, *events: dict) -> Hooks:
    """``events`` written to the stream and consumed until idle, their hooks run."""
    for event in events:
        xadd_event(streams, event)
    hooks = Hooks()
    with capture_on_commit(execute=True):
        make_consumer(streams, hooks.handler()).run(until_idle=True)
    return hooks


def pending(client) -> int:
    return int(client.xpending(contract.inbound_stream(), contract.INBOUND_GROUP)["pending"])


def test_a_text_is_stored_once_in_its_tenant_and_handed_to_the_engine_once(
    world, streams, session_a, django_capture_on_commit_callbacks
):
    # Written before any consumer existed: the group starts at 0, so it is not skipped.
    event = text_message(
        session_id=session_a.session_id, tenant_schema="alpha", body="¿Cuánto cuesta el plan Pro?"
    )
    xadd_event(streams, event)
    hooks = Hooks()
    consumer = make_consumer(streams, hooks.handler())
    # The gateway can publish the same message twice: a new entry, the same wa_id.
    xadd_event(streams, event | {"event_id": str(uuid.uuid4())})
    with django_capture_on_commit_callbacks(execute=True):
        consumer.run(until_idle=True)

    assert consumer.processed == 2 and pending(streams) == 0
    with tenant_context(world.tenant_a):
        message = Message.objects.get(external_id=event["wa_id"])
        assert (message.direction, message.kind, message.text) == (
            "in",
            "text",
            "¿Cuánto cuesta el plan Pro?",
        )
        conversation = message.conversation
        assert (conversation.channel, conversation.channel_ref) == (
            "whatsapp",
            session_a.session_id,
        )
        assert conversation.contact.wa_id == "5215512345678@c.us"
        assert conversation.contact.phone == "+5215512345678"
    assert hooks.replies == [message.pk] and hooks.voice == []
    with tenant_context(world.tenant_b):
        assert (
            not Message.objects.exists()
            or not Message.objects.filter(external_id=event["wa_id"]).exists()
        )
        assert not Contact.objects.filter(wa_id="5215512345678@c.us").exists()


def test_a_voice_note_goes_to_transcription_with_its_media_reference(
    world, streams, session_a, django_capture_on_commit_callbacks
):
    event = voice_note_event(session_a)
    hooks = consumed(streams, django_capture_on_commit_callbacks, event)
    with tenant_context(world.tenant_a):
        message = Message.objects.get(external_id=event["wa_id"])
    assert message.kind == "audio"
    assert message.media["ref"] == event["media"]["key"]
    assert message.media["sha256"] == event["media"]["sha256"]
    assert hooks.voice == [message.pk] and hooks.replies == []


def test_media_that_could_not_be_stored_keeps_its_kind_and_says_why(
    world, streams, session_a, django_capture_on_commit_callbacks
):
    """An expired voice note still goes to transcription (which asks the customer to write);
    a picture too large to store keeps its caption for the engine; both say why in the inbox."""
    expired = voice_note_event(
        session_a,
        media=None,
        media_error={"code": "media_expired", "message": "WhatsApp no longer has the file"},
    )
    picture = voice_note_event(
        session_a,
        event_id=str(uuid.uuid4()),
        msg_type="image",
        body="¿Tienen este modelo en azul?",
        media=None,
        media_error={"code": "media_too_large", "message": "70.1 MB, over 64 MB"},
    )
    hooks = consumed(streams, django_capture_on_commit_callbacks, expired, picture)

    with tenant_context(world.tenant_a):
        note = Message.objects.get(external_id=expired["wa_id"])
        image = Message.objects.get(external_id=picture["wa_id"])
    assert (note.kind, note.media, note.error) == (
        "audio",
        None,
        "media_expired: WhatsApp no longer has the file",
    )
    assert (image.kind, image.text, image.error) == (
        "image",
        "¿Tienen este modelo en azul?",
        "media_too_large: 70.1 MB, over 64 MB",
    )
    assert hooks.voice == [note.pk] and hooks.replies == [image.pk]


def test_acks_move_the_outbound_message_forward_only(world, streams, session_a, staff=None):
    with tenant_context(world.tenant_a):
        from apps.accounts.models import User

        seed = text_message(session_id=session_a.session_id, tenant_schema="alpha", body="hola")
        InboundEventHandler()(seed)
        conversation = Conversation.objects.get(channel_ref=session_a.session_id)
        staff_user = User.objects.get(email=world.staff_a.email)
        reply = staff_message_send(
            conversation_id=conversation.pk, author=staff_user, text="Te ayudo"
        )
        command_id = str(message_command_assign(message_id=reply.pk))
    wa_id = f"true_5215512345678@c.us_{uuid.uuid4().hex[:16]}"
    ack = {"session_id": session_a.session_id, "tenant_schema": "alpha", "wa_id": wa_id}
    xadd_event(
        streams,
        inbound_event("message_ack", **ack, ack=2, status="delivered", command_event_id=command_id),
    )
    # Out of order: a late "sent" after "delivered" changes nothing; "read" moves forward.
    xadd_event(
        streams, inbound_event("message_ack", **ack, ack=1, status="sent", command_event_id=None)
    )
    xadd_event(
        streams, inbound_event("message_ack", **ack, ack=3, status="read", command_event_id=None)
    )
    consumer = make_consumer(streams, InboundEventHandler())
    consumer.run(until_idle=True)
    assert consumer.processed == 3
    with tenant_context(world.tenant_a):
        reply.refresh_from_db()
        assert (reply.status, reply.external_id) == ("read", wa_id)


def test_qr_and_session_status_update_the_session(world, streams, session_a):
    ids = {"session_id": session_a.session_id, "tenant_schema": "alpha"}
    xadd_event(
        streams, inbound_event("qr", **ids, qr="2@abc", attempt=1, ts="2026-11-25T22:00:00.000Z")
    )
    consumer = make_consumer(streams, InboundEventHandler())
    consumer.run(until_idle=True)
    with tenant_context(world.tenant_a):
        assert WhatsAppSession.objects.get(pk=session_a.pk).qr == "2@abc"
    xadd_event(
        streams,
        inbound_event(
            "session_status",
            **ids,
            status="ready",
            wa_state="CONNECTED",
            reason=None,
            phone="5215500000001",
            attempt=0,
            retry_in_ms=None,
            ts="2026-11-25T22:00:05.000Z",
        ),
    )
    consumer.run(until_idle=True)
    with tenant_context(world.tenant_a):
        session = WhatsAppSession.objects.get(pk=session_a.pk)
        assert (session.status, session.phone, session.qr) == ("ready", "5215500000001", "")


def test_a_message_typed_on_the_business_phone_is_stored_as_outbound_and_hands_off(
    world, streams, session_a
):
    ids = {"session_id": session_a.session_id, "tenant_schema": "alpha"}
    event = inbound_event("outgoing_from_phone", **ids)
    make_consumer(streams, InboundEventHandler())
    xadd_event(streams, event)
    make_consumer(streams, InboundEventHandler()).run(until_idle=True)
    with tenant_context(world.tenant_a):
        message = Message.objects.get(external_id=event["wa_id"])
        assert (message.direction, message.sender, message.text) == (
            "out",
            "business",
            "Hola Ana, te atiendo yo.",
        )
        assert message.conversation.mode == "human"


def test_poison_entries_become_dead_letters_and_the_rest_keeps_flowing(world, streams, session_a):
    good = text_message(session_id=session_a.session_id, tenant_schema="alpha", body="sigo aquí")
    unknown = text_message(session_id="ghost-session", tenant_schema="alpha", body="?")
    wrong_tenant = text_message(session_id=session_a.session_id, tenant_schema="beta", body="?")
    malformed_id = xadd_event(streams, "{not json")
    invalid_id = xadd_event(streams, {"type": "message", "v": 1})
    unknown_id = xadd_event(streams, unknown)
    wrong_id = xadd_event(streams, wrong_tenant)
    xadd_event(streams, good)
    consumer = make_consumer(streams, InboundEventHandler())
    consumer.run(until_idle=True)

    assert pending(streams) == 0  # everything acknowledged
    with tenant_context(world.tenant_a):
        assert Message.objects.filter(external_id=good["wa_id"]).exists()
        assert not Message.objects.filter(external_id=wrong_tenant["wa_id"]).exists()
    with tenant_context(world.tenant_b):
        assert not Message.objects.filter(external_id=wrong_tenant["wa_id"]).exists()
    stream = contract.inbound_stream()
    letters = {
        d.payload["entry_id"]: d for d in DeadLetter.objects.filter(task_id__startswith=stream)
    }
    assert letters[malformed_id].exception_type == "invalid_event"
    assert letters[malformed_id].payload["fields"] == {"event": "{not json"}
    assert letters[invalid_id].exception_type == "invalid_event"
    assert letters[unknown_id].exception_type == "unknown_session"
    # What an operator reads (`dlq list`: "<type>: <error>") names the code once.
    assert letters[unknown_id].error == "no tenant has WhatsApp session 'ghost-session'"
    assert letters[wrong_id].exception_type == "wrong_tenant"
    assert {(d.source, d.tenant_schema or None) for d in letters.values()} == {("stream", None)}
    # The original entry is kept in the dead letter, so a replay can append it again.
    assert json.loads(letters[unknown_id].payload["fields"]["event"]) == unknown


def test_a_failing_entry_is_retried_then_dead_lettered_after_n_deliveries(
    world, streams, session_a
):
    calls: list[str] = []

    def flaky(event):
        calls.append(event["event_id"])
        raise RuntimeError("database hiccup")

    event = text_message(session_id=session_a.session_id, tenant_schema="alpha", body="hola")
    entry_id = xadd_event(streams, event)
    consumer = make_consumer(streams, flaky, claim_idle_ms=100, max_deliveries=3)
    consumer.run(until_idle=True)
    assert pending(streams) == 1  # failed once: left pending, not acknowledged
    import time

    deadline = time.monotonic() + 10
    while pending(streams) and time.monotonic() < deadline:
        time.sleep(0.15)
        consumer.step()
    assert pending(streams) == 0
    assert len(calls) == 3
    letter = DeadLetter.objects.get(task_id=f"{contract.inbound_stream()}:{entry_id}")
    assert (letter.exception_type, letter.attempts, letter.tenant_schema) == (
        "max_deliveries",
        3,
        "alpha",
    )
    assert "database hiccup" in letter.error


def test_a_dead_consumers_entries_are_reclaimed_and_processed_exactly_once(
    world, streams, session_a, django_capture_on_commit_callbacks
):
    stream = contract.inbound_stream()
    events = [
        text_message(session_id=session_a.session_id, tenant_schema="alpha", body=f"msg {i}")
        for i in range(3)
    ]
    for event in events:
        xadd_event(streams, event)
    hooks = Hooks()
    make_consumer(streams, hooks.handler(), name="crashed")
    # The crashed consumer read all three; it committed the first and died before its XACK.
    read = streams.xreadgroup(contract.INBOUND_GROUP, "crashed", {stream: ">"}, count=10)
    first = json.loads(read[0][1][0][1]["event"])
    with django_capture_on_commit_callbacks(execute=True):
        hooks.handler()(first)
    assert pending(streams) == 3

    survivor = make_consumer(streams, hooks.handler(), name="survivor", claim_idle_ms=100)
    import time

    time.sleep(0.2)
    with django_capture_on_commit_callbacks(execute=True):
        survivor.run(until_idle=True)
    assert pending(streams) == 0 and survivor.processed == 3
    with tenant_context(world.tenant_a):
        stored = Message.objects.filter(external_id__in=[e["wa_id"] for e in events])
        assert stored.count() == 3
    assert len(hooks.replies) == 3 and len(set(hooks.replies)) == 3


def test_two_consumers_in_the_group_share_the_stream(world, streams, session_a):
    events = [
        text_message(session_id=session_a.session_id, tenant_schema="alpha", body=f"n{i}")
        for i in range(6)
    ]
    for event in events:
        xadd_event(streams, event)
    one = make_consumer(streams, InboundEventHandler(), name="one", batch=3)
    two = make_consumer(streams, InboundEventHandler(), name="two", batch=3)
    one.step()
    two.step()
    # Stored, but acknowledged only once on disk: when idle, or ack_delay_ms later.
    assert pending(streams) == 6
    one.step()
    two.step()
    assert one.processed == 3 and two.processed == 3 and pending(streams) == 0
    with tenant_context(world.tenant_a):
        assert Message.objects.filter(external_id__in=[e["wa_id"] for e in events]).count() == 6


def test_trimming_keeps_every_unread_or_pending_entry(streams):
    stream = contract.inbound_stream()
    consumer = make_consumer(streams, lambda event: None)
    ids = [
        xadd_event(streams, inbound_event("qr", session_id="s", tenant_schema="alpha"))
        for _ in range(5)
    ]
    # Two read and acknowledged, one read and pending, two unread.
    streams.xreadgroup(contract.INBOUND_GROUP, "c1", {stream: ">"}, count=3)
    streams.xack(stream, contract.INBOUND_GROUP, ids[0], ids[1])
    # Another group (e.g. an audit reader) that read nothing holds everything.
    streams.xgroup_create(stream, "audit", id="0")
    assert trim_consumed(streams, stream) == 0
    streams.xgroup_destroy(stream, "audit")
    assert trim_consumed(streams, stream) == 2
    assert [entry_id for entry_id, _f in streams.xrange(stream)] == ids[2:]
    assert consumer.stream == stream


def test_a_failed_command_marks_its_message_failed_and_records_a_dead_letter(
    world, streams, session_a
):
    with tenant_context(world.tenant_a):
        from apps.accounts.models import User

        InboundEventHandler()(
            text_message(session_id=session_a.session_id, tenant_schema="alpha", body="hola")
        )
        conversation = Conversation.objects.get(channel_ref=session_a.session_id)
        reply = staff_message_send(
            conversation_id=conversation.pk,
            author=User.objects.get(email=world.owner_a.email),
            text="Oferta",
        )
        command_id = str(message_command_assign(message_id=reply.pk))
    failed = inbound_event(
        "command_failed",
        session_id=session_a.session_id,
        tenant_schema="alpha",
        command_event_id=command_id,
    )
    xadd_event(streams, failed)
    xadd_event(streams, failed)  # redelivered by the gateway: one dead letter, still
    make_consumer(streams, InboundEventHandler()).run(until_idle=True)
    with tenant_context(world.tenant_a):
        reply.refresh_from_db()
        assert reply.status == "failed" and reply.error.startswith("cold_outreach_blocked")
    letters = DeadLetter.objects.filter(task_id=f"command_failed:{failed['event_id']}")
    assert letters.count() == 1 and letters.get().tenant_schema == "alpha"
    assert timezone.now() >= letters.get().first_failed_at


def test_a_deactivated_tenant_keeps_its_messages_but_gets_no_replies(
    world, streams, session_a, django_capture_on_commit_callbacks
):
    from apps.tenants.models import Tenant

    Tenant.objects.filter(pk=world.tenant_a.pk).update(is_active=False)
    event = text_message(session_id=session_a.session_id, tenant_schema="alpha", body="¿Abren?")
    xadd_event(streams, event)
    hooks = Hooks()
    with django_capture_on_commit_callbacks(execute=True):
        make_consumer(streams, hooks.handler()).run(until_idle=True)
    with tenant_context(world.tenant_a):
        assert Message.objects.filter(external_id=event["wa_id"]).exists()
    assert hooks.replies == [] and pending(streams) == 0


def test_one_read_stores_each_tenants_messages_together_and_keeps_stream_order(
    world, streams, session_a, django_capture_on_commit_callbacks
):
    with tenant_context(world.tenant_b):
        session_b = services.whatsapp_session_create(label="Beta")
    first = text_message(session_id=session_a.session_id, tenant_schema="alpha", body="uno")
    other = text_message(session_id=session_b.session_id, tenant_schema="beta", body="hello")
    qr = inbound_event("qr", session_id=session_a.session_id, tenant_schema="alpha")
    second = text_message(session_id=session_a.session_id, tenant_schema="alpha", body="dos")
    group = text_message(
        session_id=session_a.session_id, tenant_schema="alpha", body="hola a todos", is_group=True
    )
    for event in (first, other, qr, second, group):
        xadd_event(streams, event)
    hooks = Hooks()
    consumer = make_consumer(streams, hooks.handler())
    with django_capture_on_commit_callbacks(execute=True):
        assert consumer.step() == 5  # one read
        assert consumer.step() == 0  # idle: flushed and acknowledged
    assert pending(streams) == 0 and consumer.processed == 5
    with tenant_context(world.tenant_a):
        mine = Message.objects.filter(external_id__in=[first["wa_id"], second["wa_id"]])
        assert list(mine.order_by("id").values_list("text", flat=True)) == ["uno", "dos"]
        assert not Message.objects.filter(external_id=other["wa_id"]).exists()
        assert not Message.objects.filter(external_id=group["wa_id"]).exists()
        assert WhatsAppSession.objects.get(pk=session_a.pk).qr == qr["qr"]
    with tenant_context(world.tenant_b):
        assert Message.objects.get(external_id=other["wa_id"]).text == "hello"
    assert len(hooks.replies) == 3


def test_a_message_the_database_refuses_fails_alone_and_the_rest_of_its_read_is_stored(
    world, streams, session_a
):
    events = [
        text_message(session_id=session_a.session_id, tenant_schema="alpha", body=body)
        for body in ("antes", "poison", "después")
    ]
    with tenant_context(world.tenant_a), connection.cursor() as cursor:
        # A real refusal from PostgreSQL for one row, as a disk or constraint problem would be.
        cursor.execute(
            "ALTER TABLE conversations_message ADD CONSTRAINT refuse_poison "
            "CHECK (text <> 'poison')"
        )
    ids = [xadd_event(streams, event) for event in events]
    consumer = make_consumer(streams, InboundEventHandler(), max_deliveries=1)
    consumer.run(until_idle=True)
    assert pending(streams) == 0
    with tenant_context(world.tenant_a):
        stored = Message.objects.filter(external_id__in=[e["wa_id"] for e in events])
        assert sorted(stored.values_list("text", flat=True)) == ["antes", "después"]
    letter = DeadLetter.objects.get(task_id=f"{contract.inbound_stream()}:{ids[1]}")
    assert letter.exception_type == "max_deliveries" and "refuse_poison" in letter.error


def test_a_failing_hook_does_not_stop_the_other_messages_of_the_read(
    world, streams, session_a, django_capture_on_commit_callbacks
):
    handed: list[str] = []

    def schedule(message) -> None:
        if message.text == "boom":
            raise ConnectionError("broker unreachable")
        handed.append(message.text)

    events = [
        text_message(session_id=session_a.session_id, tenant_schema="alpha", body=body)
        for body in ("uno", "boom", "tres")
    ]
    for event in events:
        xadd_event(streams, event)
    consumer = make_consumer(streams, InboundEventHandler(on_customer_text=schedule))
    with django_capture_on_commit_callbacks(execute=True):
        consumer.run(until_idle=True)
    assert handed == ["uno", "tres"] and pending(streams) == 0
    with tenant_context(world.tenant_a):
        stored = Message.objects.filter(external_id__in=[e["wa_id"] for e in events])
        assert sorted(stored.values_list("text", flat=True)) == ["boom", "tres", "uno"]
    assert not DeadLetter.objects.filter(task_id__startswith=contract.inbound_stream()).exists()


def test_entries_stay_pending_while_the_flush_fails_and_are_acknowledged_once_it_works(
    world, streams, session_a
):
    failures = [RuntimeError("database unreachable")]

    class Handler(InboundEventHandler):
        def make_durable(self) -> None:
            if failures:
                raise failures.pop()
            super().make_durable()

    consumer = make_consumer(streams, Handler())
    event = text_message(session_id=session_a.session_id, tenant_schema="alpha", body="hola")
    xadd_event(streams, event)
    assert consumer.step() == 1
    consumer.step()  # idle: the flush fails; the loop goes on
    assert pending(streams) == 1 and consumer.processed == 0
    consumer.step()  # idle again: the flush works
    assert pending(streams) == 0 and consumer.processed == 1


class LogPositions(InboundEventHandler):
    """The handler with a log whose positions the test sets: (end written, end on disk); the
    last one stays."""

    def __init__(self, positions: list[tuple[int, int]]) -> None:
        super().__init__()
        self.positions = positions
        self.flushes = 0
        self.asked = 0

    def durable_position(self) -> tuple[int, int]:
        self.asked += 1
        return self.positions.pop(0) if len(self.positions) > 1 else self.positions[0]

    def make_durable(self) -> None:
        self.flushes += 1
        super().make_durable()


@pytest.fixture
def clock(monkeypatch):
    """The consumer's clock, moved only by the test (``clock.now += seconds``): on the wall clock
    a stall of the machine between two reads longer than ack_delay_ms makes the consumer idle,
    and an idle consumer flushes, which these tests must tell apart from what they check."""
    from types import SimpleNamespace

    from apps.channels import consumer as consumer_module

    now = SimpleNamespace(now=1000.0)
    monkeypatch.setattr(
        consumer_module, "time", SimpleNamespace(monotonic=lambda: now.now, sleep=lambda s: None)
    )
    return now


def test_busy_entries_are_acknowledged_once_the_log_on_disk_covers_them_without_a_flush(
    world, streams, session_a, clock
):
    handler = LogPositions([(1000, 500), (1300, 1300)])
    consumer = make_consumer(streams, handler, ack_delay_ms=300)

    def publish(body: str) -> None:
        xadd_event(
            streams, text_message(session_id=session_a.session_id, tenant_schema="alpha", body=body)
        )

    publish("uno")
    publish("dos")
    assert consumer.step() == 2  # sent to the database, finished once the next read is in
    publish("tres")
    assert consumer.step() == 1
    # uno and dos finished (the check of the disk is due 300 ms later), tres in flight.
    assert pending(streams) == 3 and len(handler.positions) == 2
    clock.now += 0.35
    publish("cuatro")
    assert consumer.step() == 1
    # Checked (due): all four were committed before the log reached 1000, the disk is at 500.
    assert pending(streams) == 4 and handler.positions == [(1300, 1300)]
    for _ in range(20):
        clock.now += 0.05
        consumer.step()  # idle: at the next check the disk (1300) covers them
        if not pending(streams):
            break
    assert pending(streams) == 0 and consumer.processed == 4
    assert handler.flushes == 0  # never waited for the disk
    with tenant_context(world.tenant_a):
        assert Message.objects.filter(text__in=["uno", "dos", "tres", "cuatro"]).count() == 4


def test_an_idle_consumer_flushes_what_the_disk_does_not_have_yet(world, streams, session_a):
    handler = LogPositions([(1000, 10)])
    consumer = make_consumer(streams, handler, ack_delay_ms=20)
    xadd_event(
        streams, text_message(session_id=session_a.session_id, tenant_schema="alpha", body="hola")
    )
    assert consumer.step() == 1 and pending(streams) == 1 and handler.flushes == 0
    consumer.step()  # idle: the disk stays behind; 20 ms without entries, then a flush
    assert handler.flushes == 1 and pending(streams) == 0 and consumer.processed == 1


def test_a_disk_that_does_not_catch_up_on_its_own_is_flushed_while_busy(
    world, streams, session_a, monkeypatch, clock
):
    from apps.channels import consumer as consumer_module

    monkeypatch.setattr(consumer_module, "MAX_ACK_WAIT_S", 0.1)
    handler = LogPositions([(1000, 10)])  # the disk never reaches the log's end by itself
    consumer = make_consumer(streams, handler, ack_delay_ms=10)
    reads = 0
    while handler.flushes == 0 and reads < 100:
        xadd_event(
            streams, text_message(session_id=session_a.session_id, tenant_schema="alpha", body="x")
        )
        assert consumer.step() == 1  # busy: an entry in every read (5 ms apart), never idle
        reads += 1
        clock.now += 0.005
    assert handler.flushes == 1 and consumer.processed > 0
    # Flushed once the oldest entry (read at 1000.000, handled at 1000.005) had waited
    # MAX_ACK_WAIT_S, not before; the disk was asked every ack_delay_ms meanwhile, in vain.
    flushed_at = clock.now - 0.005
    assert 0.1 <= flushed_at - 1000.0 <= 0.12
    assert handler.asked >= 5
    assert pending(streams) == reads - consumer.processed


def one_entry_a_read(client, submit, log: list[tuple]) -> InboundConsumer:
    """A consumer reading one entry at a time with a submit handler; dead letters go to ``log``."""
    consumer = InboundConsumer(
        client=client,
        submit_handler=submit,
        dead_letter=lambda dead: log.append(("dead letter", dead.error_code)),
        consumer="c1",
        batch=1,
        block_ms=50,
        trim_every_s=0,
    )
    consumer.ensure_group()
    return consumer


def test_a_failure_finishing_the_read_before_is_not_taken_for_the_next_reads(streams):
    """The handler has the consumer finish the read in flight when it needs the connection. If
    that fails (Redis unreachable for its XACK), step() raises once the next read is sent, as a
    failure of the consumer's own: the next read is not failed for it, nothing is lost (the
    read before stays pending, for XAUTOCLAIM)."""
    stream = contract.inbound_stream()
    log: list[tuple] = []

    class FirstAckFails:
        def __init__(self, client) -> None:
            self._client = client
            self.failed = False

        def __getattr__(self, name: str):
            return getattr(self._client, name)

        def xack(self, *args):
            if not self.failed:
                self.failed = True
                raise redis.ConnectionError("Valkey went away")
            return self._client.xack(*args)

    def submit(documents: list[dict], connection_needed) -> object:
        connection_needed()
        bodies = [document["body"] for document in documents]
        log.append(("sent", bodies))
        return lambda: [None] * len(documents)

    consumer = one_entry_a_read(FirstAckFails(streams), submit, log)
    first = xadd_event(streams, text_message(session_id="s-1", tenant_schema="alpha", body="a"))
    xadd_event(streams, text_message(session_id="s-1", tenant_schema="alpha", body="b"))

    assert consumer.step() == 1  # a sent
    with pytest.raises(redis.ConnectionError, match="Valkey went away"):
        consumer.step()  # b read; finishing a fails when b's handler needs the connection
    assert log == [("sent", ["a"]), ("sent", ["b"])]
    consumer.run(until_idle=True)  # b finished and acknowledged
    pending = streams.xpending_range(stream, contract.INBOUND_GROUP, "-", "+", 10)
    assert [entry["message_id"] for entry in pending] == [first]
    assert consumer.processed == 1  # b


def test_the_next_read_is_made_while_the_database_stores_the_one_before(streams):
    """With a submit_handler (the command's), a read is sent to the database and finished only
    after the next read came in, was validated and prepared (the handler says when it needs the
    connection); anything else that needs the database (a
    dead letter, the end of the run) finishes the read in flight first."""
    log: list[tuple] = []

    class Reads:
        def __init__(self, client) -> None:
            self._client = client

        def __getattr__(self, name: str):
            return getattr(self._client, name)

        def xreadgroup(self, *args, **kwargs):
            response = self._client.xreadgroup(*args, **kwargs)
            log.append(("read", sum(len(entries) for _stream, entries in response or [])))
            return response

    def submit(documents: list[dict], connection_needed) -> object:
        bodies = [document["body"] for document in documents]
        log.append(("prepared", bodies))
        connection_needed()
        log.append(("sent", bodies))

        def finish() -> list[None]:
            log.append(("stored", bodies))
            return [None] * len(documents)

        return finish

    consumer = one_entry_a_read(Reads(streams), submit, log)
    for body in ("a", "b"):
        xadd_event(streams, text_message(session_id="s-1", tenant_schema="alpha", body=body))
    xadd_event(streams, "{not json")
    xadd_event(streams, text_message(session_id="s-1", tenant_schema="alpha", body="c"))

    consumer.run(until_idle=True)

    assert log == [
        ("read", 1),
        ("prepared", ["a"]),
        ("sent", ["a"]),
        ("read", 1),  # b, read and prepared while a is being stored
        ("prepared", ["b"]),
        ("stored", ["a"]),  # once the handler needs the connection
        ("sent", ["b"]),
        ("read", 1),  # the malformed entry
        ("stored", ["b"]),  # finished before the dead letter is written
        ("dead letter", "invalid_event"),
        ("read", 1),
        ("prepared", ["c"]),
        ("sent", ["c"]),
        ("read", 0),
        ("stored", ["c"]),
        ("read", 0),
    ]
    assert consumer.processed == 3 and pending(streams) == 0
