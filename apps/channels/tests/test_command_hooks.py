"""What consume_inbound hands on after storing a customer message: texts to the agent engine
(workers.agent.reply_to_conversation, debounced), voice notes to the transcription queue — both
sent from the tenant's schema so the worker runs there."""

from __future__ import annotations

import uuid

import pytest
from celery.signals import before_task_publish
from django.utils import timezone
from django_tenants.utils import tenant_context

from apps.channels.management.commands.consume_inbound import schedule_reply, transcribe
from apps.conversations.models import Message
from apps.conversations.services import inbound_message_record

pytestmark = pytest.mark.django_db


@pytest.fixture
def published(monkeypatch):
    """Tasks as they are published, on an app like EVA's (tenant-schemas-celery, same routes)
    bound to kombu's in-memory broker, so no worker of the test run executes them."""
    from tenant_schemas_celery.app import CeleryApp

    import eva.celery

    memory_app = CeleryApp("hooks-test", broker="memory://", backend="cache+memory://")
    memory_app.conf.task_routes = eva.celery.app.conf.task_routes
    memory_app.conf.task_default_queue = eva.celery.app.conf.task_default_queue
    monkeypatch.setattr(eva.celery, "app", memory_app)
    sent: list[dict] = []

    def capture(sender=None, headers=None, body=None, routing_key=None, **kwargs):
        sent.append({"task": sender, "headers": headers, "body": body, "queue": routing_key})

    before_task_publish.connect(capture, weak=False)
    yield sent
    before_task_publish.disconnect(capture)


def _stored(customer: str, *, kind: str = "text", text: str = "", media: dict | None = None):
    """A customer message as consume_inbound stores it, in the current tenant's schema."""
    return inbound_message_record(
        channel="whatsapp",
        channel_ref="alpha-hooks",
        contact_wa_id=customer,
        contact_phone=None,
        contact_name=None,
        external_id=f"false_hooks_{uuid.uuid4().hex}",
        kind=kind,
        text=text,
        media=media,
        sent_at=timezone.now(),
    ).message


def _voice_note():
    media = {"ref": "alpha/whatsapp/x.ogg", "mime": "audio/ogg", "size": 1, "sha256": "0" * 64}
    return _stored("5215500000099@c.us", kind="audio", media=media)


def test_voice_notes_go_to_transcription_and_texts_to_the_engine_in_their_schema(
    world, published, django_capture_on_commit_callbacks
):
    with tenant_context(world.tenant_a):
        message = _voice_note()
        transcribe(message)
        with django_capture_on_commit_callbacks(execute=True):
            schedule_reply(message)
    by_task = {p["task"]: p for p in published}
    voice = by_task["workers.transcription.transcribe_message"]
    assert voice["queue"] == "transcription" and voice["body"][0] == [message.pk]
    assert voice["headers"]["_schema_name"] == "alpha"
    reply = by_task["workers.agent.reply_to_conversation"]
    assert reply["queue"] == "agent"
    assert reply["body"][0] == [message.conversation_id, message.pk]
    assert reply["headers"]["_schema_name"] == "alpha"


def test_a_burst_of_texts_sends_one_reply_task_and_the_task_comes_back_while_it_lasts(
    world, published, settings, django_capture_on_commit_callbacks, monkeypatch
):
    from datetime import timedelta

    from apps.agents.services import reply_turn_later, reply_turn_take

    # A quiet window far longer than any stall of a busy machine between two steps below; the
    # end of the burst is reached by moving the clock, not by sleeping.
    settings.EVA_AGENT_BURST_SECONDS = 5.0
    customer = f"52155{uuid.uuid4().int % 10**8:08d}@c.us"

    def text(body: str):
        return _stored(customer, text=body)

    def replies() -> list[list[int]]:
        task = "workers.agent.reply_to_conversation"
        return [p["body"][0] for p in published if p["task"] == task]

    with tenant_context(world.tenant_a):
        burst = [text(body) for body in ("hola", "una pregunta", "¿hacen envíos?")]
        conversation = burst[0].conversation_id
        for message in burst:
            with django_capture_on_commit_callbacks(execute=True):
                schedule_reply(message)
        # One task for the burst (the first message's, due 5 s later); the others rode on it.
        assert replies() == [[conversation, burst[0].pk]]

        # The task starts: the claim is released, the burst's newest message is the one to
        # answer, and the customer wrote less than 5 s ago: it comes back later.
        turn = reply_turn_take(conversation_id=conversation)
        assert turn.message_id == burst[-1].pk and 0 < turn.wait_s <= 5.0
        assert reply_turn_later(conversation_id=conversation, turn=turn)
        assert replies()[-1] == [conversation, burst[-1].pk]
        with django_capture_on_commit_callbacks(execute=True):
            schedule_reply(text("¿y a Lima?"))  # the task that came back answers it too
        assert len(replies()) == 2

        later = timezone.now() + timedelta(seconds=5.05)
        monkeypatch.setattr(timezone, "now", lambda: later)
        turn = reply_turn_take(conversation_id=conversation)
        assert turn.wait_s == 0  # quiet long enough: the task answers now
        with django_capture_on_commit_callbacks(execute=True):
            schedule_reply(text("gracias"))  # after the task took its turn: a task of its own
        assert len(replies()) == 3
    with tenant_context(world.tenant_b):
        # Another tenant's conversation with the same id has claims of its own.
        with django_capture_on_commit_callbacks(execute=True):
            schedule_reply(Message(pk=burst[0].pk, conversation_id=conversation))
        assert len(replies()) == 4
