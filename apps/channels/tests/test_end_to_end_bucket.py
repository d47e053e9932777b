"""A voice note end to end with the media in an S3-compatible bucket (EVA_MEDIA_STORAGE=s3 on
both sides), every part real except WhatsApp itself: the gateway-node process with its fake
WhatsApp puts the note in the bucket (``rclone serve s3``, see the ``s3_server`` fixture) and
publishes its key and sha256; `manage.py consume_inbound` stores the message and queues its
transcription; a Celery worker reads the note from the bucket, transcribes it with the real
model, and the agent's answer goes back out through the gateway.

These processes get a Redis database of their own: the session's Celery worker (local media)
must not take their tasks, nor this test's worker the other tests'.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import signal
import sys
import uuid
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import pytest
import redis

from apps.channels.tests.conftest import (
    GATEWAY,
    PREFIX,
    ROOT,
    Process,
    _ensure_gateway_installed,
    committed,
    database_url,
    gateway_environment,
    in_alpha,
    wait_for,
)
from apps.speech.tests.audio import SPANISH, speech
from apps.speech.wer import word_error_rate

pytestmark = pytest.mark.django_db

FAKE_IN = f"{PREFIX}:fakewa:in"
FAKE_SENT = f"{PREFIX}:fakewa:sent"


def other_database(url: str) -> str:
    """``url`` with another Redis database number."""
    parts = urlsplit(url)
    number = int(parts.path.strip("/") or 0)
    return urlunsplit(parts._replace(path=f"/{(number + 8) % 16}"))


@pytest.fixture
def bucket_world(world, s3_server, tmp_path, settings) -> Iterator[dict[str, Any]]:
    from apps.agents.models import Agent
    from apps.agents.services import agent_create
    from apps.channels import services
    from apps.channels.models import WhatsAppSession
    from apps.conversations.models import Contact
    from apps.tenants.models import WhatsAppSessionIndex
    from eva.celery import QUEUES

    _ensure_gateway_installed()
    redis_url = other_database(str(settings.REDIS_URL))
    client = redis.Redis.from_url(redis_url, decode_responses=True)
    client.flushdb()
    # In-process publishing (the session's start, staff replies) goes there too.
    settings.REDIS_URL = redis_url
    bucket = f"eva-e2e-{uuid.uuid4().hex[:12]}"
    s3 = s3_server.client()
    s3.create_bucket(Bucket=bucket)
    media = s3_server.environment(bucket)
    local_media = tmp_path / "media"  # the gateway's MEDIA_ROOT: must stay empty
    session = in_alpha(world, lambda: services.whatsapp_session_create(label="Bucket"))
    agent = in_alpha(world, lambda: agent_create(name="Eva bucket", default_language="es"))
    processes: list[Process] = []
    made: dict[str, Any] = {
        "redis": client,
        "bucket": bucket,
        "s3": s3,
        "session_id": session.session_id,
        "local_media": local_media,
        "wa_ids": [],
    }
    django_env = {
        k: v for k, v in os.environ.items() if not k.startswith(("EVA_INBOUND_", "EVA_S3_"))
    } | {
        "DATABASE_URL": database_url(),
        "REDIS_URL": redis_url,
        "EVA_MEDIA_ROOT": str(local_media),
        "LOG_FORMAT": "console",
        "LOG_LEVEL": "info",
        **{k: v for k, v in media.items() if k.startswith("EVA_")},
    }
    try:
        gateway = Process(
            "gateway",
            ["node", "bin/gateway.js"],
            gateway_environment(
                gateway_id=f"bucket-{os.getpid()}",
                folder=tmp_path,
                REDIS_URL=redis_url,
                SESSIONS=f"{session.session_id}:{world.tenant_a.schema_name}",
                **{k: v for k, v in media.items() if not k.startswith("EVA_")},
            ),
            GATEWAY,
        )
        processes.append(gateway)
        consumer = Process(
            "consumer",
            [sys.executable, "manage.py", "consume_inbound", "--block-ms", "200"],
            django_env,
            ROOT,
        )
        processes.append(consumer)
        node = f"bucket-{os.getpid()}@{os.uname().nodename}"
        worker = Process(
            "worker",
            [
                *(sys.executable, "-m", "celery", "-A", "eva", "worker", "-Q", ",".join(QUEUES)),
                *("--pool=solo", "-n", node, "--without-mingle", "--without-gossip"),
                "--loglevel=INFO",
            ],
            django_env | {"EVA_AGENT_BURST_SECONDS": "0.5"},
            ROOT,
        )
        processes.append(worker)
        for process, line in ((gateway, "gateway started"), (consumer, "consuming")):
            wait_for(lambda p=process, t=line: p.logged(t), what=f"{process.name} to start")
        wait_for(lambda: worker.logged(" ready."), what="the worker to start", timeout=60)
        wait_for(
            lambda: in_alpha(
                world,
                lambda: WhatsAppSession.objects.get(session_id=session.session_id).status,
            )
            == "ready",
            what="the session ready",
        )
        yield made
    finally:
        for process in processes:
            process.stop(signal.SIGTERM, 10)
        for process in processes:
            print(process.tail())

        def clean() -> None:
            from django_tenants.utils import tenant_context

            with tenant_context(world.tenant_a):
                Contact.objects.filter(wa_id__in=made["wa_ids"]).delete()
                WhatsAppSession.objects.filter(session_id=session.session_id).delete()
                Agent.objects.filter(pk=agent.pk).delete()
            WhatsAppSessionIndex.objects.filter(session_id=session.session_id).delete()

        committed(clean)
        for item in s3.list_objects_v2(Bucket=bucket).get("Contents", []):
            s3.delete_object(Bucket=bucket, Key=item["Key"])
        s3.delete_bucket(Bucket=bucket)
        client.flushdb()


def test_a_voice_note_travels_through_the_bucket_and_is_answered(bucket_world, world, tmp_path):
    from apps.conversations.models import Message

    client = bucket_world["redis"]
    audio = speech(tmp_path, SPANISH, language="es", fmt="ogg").read_bytes()
    customer = f"52188{uuid.uuid4().int % 10**8:08d}@c.us"
    bucket_world["wa_ids"].append(customer)
    action = {
        "session_id": bucket_world["session_id"],
        "action": "receive",
        "from": customer,
        "type": "ptt",
        "media": {
            "mimetype": "audio/ogg; codecs=opus",
            "data_b64": base64.b64encode(audio).decode(),
        },
    }
    client.xadd(FAKE_IN, {"event": json.dumps(action)})

    def transcribed() -> Message | None:
        return in_alpha(
            world,
            lambda: Message.objects.filter(conversation__contact__wa_id=customer, direction="in")
            .exclude(transcript="")
            .first(),
        )

    note = wait_for(transcribed, what="the voice note transcribed", timeout=120)
    assert note.kind == "audio"
    assert word_error_rate(SPANISH, note.transcript) <= 0.35, note.transcript
    # The note is in the bucket under the key the event carried, with the sha256 it announced,
    # and nowhere on the local disk.
    stored = bucket_world["s3"].get_object(Bucket=bucket_world["bucket"], Key=note.media["ref"])
    body = stored["Body"].read()
    assert body == audio
    assert note.media["sha256"] == hashlib.sha256(audio).hexdigest()
    assert note.media["ref"].startswith(f"{world.tenant_a.schema_name}/whatsapp/")
    local = bucket_world["local_media"]
    assert not local.exists() or not any(path.is_file() for path in local.rglob("*"))

    def answered() -> list[dict[str, Any]]:
        sent = [json.loads(fields["event"]) for _id, fields in client.xrange(FAKE_SENT)]
        return [s for s in sent if s["chat_id"] == customer]

    replies = wait_for(answered, what="the agent's answer sent to the customer", timeout=90)
    assert replies[0]["text"]
