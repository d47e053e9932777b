"""Voice notes through the real queue: a real worker transcribes real speech with the real model.

espeak-ng speaks a sentence, ffmpeg encodes it as WhatsApp does (OGG/Opus), the file goes where
the gateway stores media (MEDIA_ROOT/<schema>/whatsapp/...), the message is stored like the
consumer stores it, and ``workers.transcription.transcribe_message`` is sent by name, as the
consumer sends it. The worker uses the project's default model (bundled multilingual ``base``).
"""

from __future__ import annotations

import shutil
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings
from django.utils import timezone
from django_tenants.utils import tenant_context

from apps.ops.tests.fixtures import committed_db, wait_until
from apps.speech.replies import voice_note_fallback_text
from apps.speech.tests.audio import ENGLISH, SPANISH, generated, speech
from apps.speech.wer import word_error_rate
from eva.celery import app

__all__ = ["committed_db"]
pytestmark = pytest.mark.usefixtures("committed_db")

TASK = "workers.transcription.transcribe_message"
# The agent waits EVA_AGENT_BURST_SECONDS (3 s in the worker) before answering; a second reply,
# if there were one, would come within that window again.
AFTER_REPLY_S = 5


@dataclass
class Note:
    message_id: int
    conversation_id: int
    external_id: str
    task: Any = None  # the AsyncResult of the transcription task, when one was sent


@pytest.fixture(scope="module")
def clips(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("voice-notes")


@pytest.fixture
def voice(world, celery_worker) -> Iterator:
    """Store voice notes for a tenant, and clean up the contacts, agents and files made."""
    from apps.agents.models import Agent
    from apps.agents.services import agent_create
    from apps.conversations.models import Contact
    from apps.conversations.services import inbound_message_record

    folder = f"whatsapp/voice-tests-{uuid.uuid4().hex[:8]}"
    made: list[tuple[object, str]] = []
    agents: list[tuple[object, int]] = []

    def agent_for(tenant: object, language: str) -> None:
        with tenant_context(tenant):
            agent = agent_create(
                name="Voz",
                persona="The shop's sales assistant",
                default_language=language,
                handoff_low_relevance_turns=0,
            )
        agents.append((tenant, agent.pk))

    def send(
        tenant: object,
        audio: Path | None,
        *,
        ref: str | None = None,
        send_task: bool = True,
        media_error: str = "",
    ) -> Note:
        """A voice note of ``audio`` (or of a file at ``ref``; or, with ``media_error``, one
        whose audio the gateway could not store)."""
        schema = tenant.schema_name  # type: ignore[attr-defined]
        if ref is None and not media_error:
            assert audio is not None
            ref = f"{schema}/{folder}/{uuid.uuid4().hex}{audio.suffix}"
            target = Path(settings.MEDIA_ROOT) / ref
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(audio, target)
        wa_id = f"sim:{uuid.uuid4().hex}"
        external_id = f"wamid.voice.{uuid.uuid4().hex}"
        with tenant_context(tenant):
            record = inbound_message_record(
                channel="simulator",
                channel_ref="",
                contact_wa_id=wa_id,
                contact_phone=None,
                contact_name="Voice Customer",
                external_id=external_id,
                kind="audio",
                text="",
                media=None
                if media_error
                else {"ref": ref, "mime": "audio/ogg; codecs=opus", "size": 0, "sha256": ""},
                sent_at=timezone.now(),
                media_error=media_error,
            )
            task = app.send_task(TASK, args=[record.message.pk]) if send_task else None
        made.append((tenant, wa_id))
        return Note(record.message.pk, record.conversation.pk, external_id, task)

    yield agent_for, send

    for tenant, wa_id in made:
        with tenant_context(tenant):
            Contact.objects.filter(wa_id=wa_id).delete()
    for tenant, agent_id in agents:
        with tenant_context(tenant):
            Agent.objects.filter(pk=agent_id).delete()
    for schema in ("alpha", "beta"):
        shutil.rmtree(Path(settings.MEDIA_ROOT) / schema / folder, ignore_errors=True)


def message(tenant: object, message_id: int):
    from apps.conversations.models import Message

    with tenant_context(tenant):
        return Message.objects.get(pk=message_id)


def bot_replies(tenant: object, conversation_id: int) -> list:
    from apps.conversations.models import Message

    with tenant_context(tenant):
        return list(
            Message.objects.filter(conversation_id=conversation_id, sender="bot").order_by("id")
        )


def transcribed(tenant: object, note: Note):
    def done():
        stored = message(tenant, note.message_id)
        assert stored.status != "failed", stored.error
        return stored if stored.transcript else None

    return wait_until(done, timeout=120, what="the transcript")


def exactly_one_reply(tenant: object, note: Note):
    wait_until(lambda: bot_replies(tenant, note.conversation_id), timeout=60, what="a reply")
    time.sleep(AFTER_REPLY_S)
    replies = bot_replies(tenant, note.conversation_id)
    assert len(replies) == 1, [r.text for r in replies]
    return replies[0]


def test_spanish_voice_note_is_transcribed_then_answered_once(world, voice, clips) -> None:
    agent_for, send = voice
    agent_for(world.tenant_a, "es")
    note = send(world.tenant_a, speech(clips, SPANISH, language="es", fmt="ogg"))

    stored = transcribed(world.tenant_a, note)

    assert word_error_rate(SPANISH, stored.transcript) <= 0.35, stored.transcript
    assert "zapatos" in stored.transcript.lower()
    assert stored.transcript_language == "es"
    assert stored.body == stored.transcript  # the transcript is what the message says
    reply = exactly_one_reply(world.tenant_a, note)
    assert reply.replied_to_ids == [note.message_id]
    assert reply.model != "voice-note-fallback"

    # Tenant B sees none of it.
    from apps.conversations.models import Message

    with tenant_context(world.tenant_b):
        assert not Message.objects.filter(external_id=note.external_id).exists()


def test_english_voice_note_is_transcribed(world, voice, clips) -> None:
    agent_for, send = voice
    agent_for(world.tenant_a, "es")  # detected English wins over the Spanish-speaking tenant
    note = send(world.tenant_a, speech(clips, ENGLISH, language="en", fmt="ogg"))

    stored = transcribed(world.tenant_a, note)

    assert word_error_rate(ENGLISH, stored.transcript) <= 0.25, stored.transcript
    assert stored.transcript_language == "en"
    exactly_one_reply(world.tenant_a, note)
    result = note.task.get(timeout=60)
    assert result["language"] == "en" and result["model"] == "base"
    assert 3 < result["duration_s"] < 10 and result["processing_s"] > 0
    assert 0.5 <= result["language_probability"] <= 1
    # The worker transcribed other notes before this one (the Spanish test) with one model.
    assert result["model_loads"] == 1


def _corrupt(clips: Path) -> Path:
    path = clips / "corrupt.ogg"
    path.write_bytes(b"OggS" + bytes(range(256)) * 40)
    return path


def _empty(clips: Path) -> Path:
    path = clips / "empty.ogg"
    path.write_bytes(b"")
    return path


def _too_long(clips: Path) -> Path:
    seconds = settings.WHISPER_MAX_DURATION_S + 20
    return generated(clips, f"silence-{seconds}s", "anullsrc=r=16000:cl=mono", seconds)


@pytest.mark.parametrize(
    ("make", "code"),
    [(_corrupt, "audio_unreadable"), (_empty, "audio_empty"), (_too_long, "audio_too_long")],
)
def test_bad_audio_fails_clearly_and_the_customer_is_asked_to_write(
    world, voice, clips, make, code
) -> None:
    agent_for, send = voice
    agent_for(world.tenant_a, "es")
    note = send(world.tenant_a, make(clips))

    stored = wait_until(
        lambda: (m := message(world.tenant_a, note.message_id)).status == "failed" and m,
        timeout=60,
        what="the voice note to fail",
    )

    assert stored.error.startswith(f"{code}: ")
    assert stored.transcript == ""
    reply = exactly_one_reply(world.tenant_a, note)
    assert reply.text == voice_note_fallback_text("es")
    assert reply.replied_to_ids == [note.message_id]


def test_a_voice_note_cannot_reach_another_tenants_audio(world, voice, clips) -> None:
    agent_for, send = voice
    agent_for(world.tenant_b, "pt")
    alpha_note = send(world.tenant_a, speech(clips, SPANISH, language="es"), send_task=False)
    alpha_ref = message(world.tenant_a, alpha_note.message_id).media["ref"]

    # A message in B whose reference points at A's file (a forged or buggy event).
    note = send(world.tenant_b, None, ref=alpha_ref)

    stored = wait_until(
        lambda: (m := message(world.tenant_b, note.message_id)).status == "failed" and m,
        timeout=60,
        what="the voice note to fail",
    )
    assert stored.error.startswith("audio_missing: ")
    assert stored.transcript == ""
    reply = exactly_one_reply(world.tenant_b, note)
    assert reply.text == voice_note_fallback_text("pt")


# Marked django_db, so running this module alone still creates the test database (pytest-django
# sets databases up only for sessions with at least one django_db test).
@pytest.mark.django_db
@pytest.mark.parametrize(
    "ref",
    [
        "/alpha/whatsapp/s/note.ogg",  # absolute
        "alpha/whatsapp/../../beta/whatsapp/s/note.ogg",  # climbs out
        "beta/whatsapp/s/note.ogg",  # another tenant's folder
        "",
    ],
)
def test_media_references_stay_in_the_tenants_folder(world, ref: str, tmp_path, settings) -> None:
    from apps.speech.errors import AudioRejected
    from workers.transcription import voice_note_file

    settings.MEDIA_ROOT = tmp_path
    note = tmp_path / "alpha" / "whatsapp" / "s" / "note.ogg"
    note.parent.mkdir(parents=True)
    note.write_bytes(b"OggS")
    with tenant_context(world.tenant_a):
        with voice_note_file({"ref": "alpha/whatsapp/s/note.ogg"}, max_bytes=100) as path:
            assert path == note  # local storage: the file itself, no copy
        # "key" is the stream contract's name of the reference
        with voice_note_file({"key": "alpha/whatsapp/s/note.ogg"}, max_bytes=100) as path:
            assert path == note
        with pytest.raises(AudioRejected) as caught, voice_note_file({"ref": ref}, max_bytes=100):
            pass
    assert caught.value.code == "audio_missing"


def test_a_voice_note_in_the_bucket_is_transcribed(world, voice, clips, s3_media) -> None:
    """EVA_MEDIA_STORAGE=s3: the gateway put the note in the bucket; the worker reads it from
    there (through a temporary copy for the model), nothing on the local disk."""
    from workers.transcription import voice_note_transcribe

    server, bucket = s3_media
    agent_for, send = voice
    agent_for(world.tenant_a, "es")
    audio = speech(clips, SPANISH, language="es", fmt="ogg")
    ref = f"alpha/whatsapp/s3-{uuid.uuid4().hex[:8]}/{uuid.uuid4().hex}.ogg"
    server.client().put_object(
        Bucket=bucket, Key=ref, Body=audio.read_bytes(), ContentType="audio/ogg"
    )
    assert not (Path(settings.MEDIA_ROOT) / ref).exists()
    note = send(world.tenant_a, None, ref=ref, send_task=False)

    with tenant_context(world.tenant_a):
        result = voice_note_transcribe(message_id=note.message_id)

    assert result["status"] == "transcribed", result
    stored = message(world.tenant_a, note.message_id)
    assert word_error_rate(SPANISH, stored.transcript) <= 0.35, stored.transcript
    assert stored.transcript_language == "es"


def test_audio_in_the_bucket_over_the_limit_is_refused_before_it_is_copied(world, s3_media) -> None:
    from apps.speech.errors import AudioRejected
    from workers.transcription import voice_note_file

    server, bucket = s3_media
    key = f"alpha/whatsapp/s3-{uuid.uuid4().hex[:8]}/note.ogg"
    data = b"\x01" * 300_000
    server.client().put_object(Bucket=bucket, Key=key, Body=data)
    gone = key.replace("note", "gone")
    with tenant_context(world.tenant_a):
        with voice_note_file({"ref": key}, max_bytes=400_000) as path:
            copy = path
            assert path.read_bytes() == data
        assert not copy.exists()  # the temporary copy is removed
        with (
            pytest.raises(AudioRejected) as too_large,
            voice_note_file({"ref": key}, max_bytes=200_000),
        ):
            pass
        with pytest.raises(AudioRejected) as missing, voice_note_file({"ref": gone}, max_bytes=1):
            pass
    assert too_large.value.code == "audio_too_large"
    assert "is 0.3 MB; the limit is 0.2 MB" in str(too_large.value)
    assert missing.value.code == "audio_missing"


def test_running_twice_transcribes_once(world, voice, clips) -> None:
    agent_for, send = voice
    agent_for(world.tenant_a, "es")
    note = send(world.tenant_a, speech(clips, SPANISH, language="es"))
    first = transcribed(world.tenant_a, note).transcript

    with tenant_context(world.tenant_a):
        result = app.send_task(TASK, args=[note.message_id])
    assert result.get(timeout=60)["reason"] == "already transcribed"

    assert message(world.tenant_a, note.message_id).transcript == first
    exactly_one_reply(world.tenant_a, note)


def test_a_voice_note_whatsapp_did_not_deliver_fails_saying_why(world, voice) -> None:
    """The gateway could not store the audio (expired on WhatsApp's side): the consumer keeps
    it as a voice note with the reason; the transcription fails it saying so and the customer
    is asked, once, to write instead."""
    agent_for, send = voice
    agent_for(world.tenant_a, "es")
    note = send(
        world.tenant_a,
        None,
        send_task=False,
        media_error="media_expired: WhatsApp no longer has the file",
    )

    with tenant_context(world.tenant_a):
        from workers.transcription import voice_note_transcribe

        result = voice_note_transcribe(message_id=note.message_id)

    assert result["status"] == "failed" and result["code"] == "audio_missing"
    stored = message(world.tenant_a, note.message_id)
    assert stored.status == "failed"
    assert stored.error == (
        "audio_missing: WhatsApp did not deliver the audio "
        "(media_expired: WhatsApp no longer has the file)"
    )
    replies = bot_replies(world.tenant_a, note.conversation_id)
    assert [reply.text for reply in replies] == [voice_note_fallback_text("es")]
