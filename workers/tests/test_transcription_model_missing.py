"""A worker whose Whisper model cannot be loaded dead-letters the voice note at once.

A misspelt ``WHISPER_MODEL`` (or no network for a model that must be downloaded) is not the
customer's fault and no retry fixes it: the task is dead-lettered with the tenant, the message
keeps waiting (no failure reply, no transcript) and an operator replays it once the setting is
fixed. A second worker with the broken setting runs on a private queue, so the shared worker and
other tests are untouched.
"""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from django.conf import settings
from django.utils import timezone
from django_tenants.utils import tenant_context

from apps.ops.models import DeadLetter
from apps.ops.tests.fixtures import committed_db, wait_until
from apps.speech.tests.audio import SPANISH, speech
from eva.celery import app

__all__ = ["committed_db"]
pytestmark = pytest.mark.usefixtures("committed_db")

ROOT = Path(__file__).resolve().parents[2]
QUEUE = f"voice-test-{os.getpid()}"
NODE = f"voice-{os.getpid()}@{os.uname().nodename}"


@pytest.fixture(scope="module")
def broken_worker(django_db_setup) -> Iterator[str]:
    from conftest import worker_process

    extra_env = {"WHISPER_MODEL": "no-such-whisper-model", "WHISPER_ALLOW_DOWNLOAD": "0"}
    with worker_process(queues=QUEUE, node=NODE, extra_env=extra_env):
        yield NODE


def test_an_unloadable_model_dead_letters_the_task_and_the_note_waits(
    world, broken_worker, tmp_path
) -> None:
    from apps.conversations.models import Contact, Message
    from apps.conversations.services import inbound_message_record

    ref = f"alpha/whatsapp/voice-model-test/{uuid.uuid4().hex}.ogg"
    target = Path(settings.MEDIA_ROOT) / ref
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(speech(tmp_path, SPANISH, language="es"), target)
    wa_id = f"sim:{uuid.uuid4().hex}"
    try:
        with tenant_context(world.tenant_a):
            record = inbound_message_record(
                channel="simulator",
                channel_ref="",
                contact_wa_id=wa_id,
                contact_phone=None,
                contact_name=None,
                external_id=f"wamid.voice.{uuid.uuid4().hex}",
                kind="audio",
                text="",
                media={"ref": ref, "mime": "audio/ogg", "size": 0, "sha256": ""},
                sent_at=timezone.now(),
            )
            task = app.send_task(
                "workers.transcription.transcribe_message",
                args=[record.message.pk],
                queue=QUEUE,
            )

        dead = wait_until(
            lambda: DeadLetter.objects.filter(task_id=task.id).first(),
            timeout=60,
            what="the dead letter",
        )
        assert dead.name == "workers.transcription.transcribe_message"
        assert dead.tenant_schema == "alpha"
        assert dead.payload["args"] == [record.message.pk]
        assert dead.exception_type == "apps.speech.errors.ModelUnavailable"
        assert "no-such-whisper-model" in dead.error
        assert dead.attempts == 1  # permanent: not retried

        with tenant_context(world.tenant_a):
            message = Message.objects.get(pk=record.message.pk)
            assert message.status == "received" and message.transcript == ""
            assert not Message.objects.filter(
                conversation_id=record.conversation.pk, sender="bot"
            ).exists()
        with tenant_context(world.tenant_b):
            assert not Message.objects.filter(external_id=record.message.external_id).exists()
    finally:
        with tenant_context(world.tenant_a):
            Contact.objects.filter(wa_id=wa_id).delete()
        if "task" in locals():
            DeadLetter.objects.filter(task_id=task.id).delete()
        target.unlink(missing_ok=True)


# Marked django_db, so running this module alone still creates the test database (pytest-django
# sets databases up only for sessions with at least one django_db test).
@pytest.mark.django_db
def test_the_same_setting_is_refused_by_whisper_prepare(settings) -> None:
    from django.core.management import CommandError, call_command

    settings.WHISPER_ALLOW_DOWNLOAD = False
    with pytest.raises(CommandError, match="no-such-whisper-model"):
        call_command("whisper_prepare", "no-such-whisper-model")
