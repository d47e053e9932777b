"""Voice notes (queue ``transcription``): audio → local faster-whisper → the message's text.

Sent by name (``workers.transcription.transcribe_message``) by the inbound consumer for audio
messages, instead of asking for a reply: the agent answers a voice note only once its transcript
exists. The speech engine (apps.speech) does the work; this module ties it to the message:

* transcript stored (``message_transcript_set``), then the reply asked for (``reply_schedule``),
  in one transaction, so the reply task is enqueued only once the transcript is committed;
* audio that cannot be transcribed (empty, corrupt, no speech, over the limits, missing) marks
  the message failed with the reason, and the customer is asked, in their language, to write;
* anything else (the database or Redis briefly down, a model that cannot load) goes to the
  retry/dead-letter path of ``TenantBoundTask``.

Re-running is safe (late acknowledgement redelivers a task whose worker died): a message that
already has its transcript only has its reply asked for again (the engine answers a turn once),
and a failed one is left alone.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from django.conf import settings
from django.db import transaction

from apps.agents.selectors import agent_for_conversation
from apps.agents.services import reply_schedule
from apps.conversations.models import Message
from apps.conversations.services import (
    BotReply,
    bot_reply_deliver,
    bot_reply_record,
    message_mark_failed,
    message_transcript_set,
)
from apps.speech.engine import WhisperConfig, model_loads, transcribe_file
from apps.speech.errors import AudioRejected
from apps.speech.replies import voice_note_fallback_text
from eva.celery import app
from eva.media import local_file, shared_storage, tenant_media_key
from workers.base import TenantBoundTask

logger = logging.getLogger(__name__)


@app.task(name="workers.transcription.transcribe_message", base=TenantBoundTask)
def transcribe_message(message_id: int) -> dict[str, Any]:
    return voice_note_transcribe(message_id=message_id)


def voice_note_transcribe(*, message_id: int) -> dict[str, Any]:
    """Transcribe inbound voice note ``message_id`` of the current tenant and move it on."""
    message = Message.objects.select_related("conversation__contact").filter(pk=message_id).first()
    if message is None:
        return {"status": "skipped", "reason": "no such message"}
    if message.status == Message.Status.FAILED:
        return {"status": "skipped", "reason": "already failed"}
    if message.transcript:
        _reply_schedule(message)
        return {"status": "skipped", "reason": "already transcribed"}

    language = _customer_language(message)
    config = WhisperConfig.from_settings()
    try:
        with voice_note_file(
            message.media, max_bytes=config.max_bytes, why_missing=message.error
        ) as audio:
            transcript = transcribe_file(audio, language_hint=language, config=config)
    except AudioRejected as rejected:
        replied = _fail(message, rejected, language=language)
        logger.warning(
            "voice note not transcribed",
            extra={"message_id": message_id, "code": rejected.code, "reason": rejected.reason},
        )
        return {
            "status": "failed",
            "code": rejected.code,
            "reason": rejected.reason,
            "fallback_message_id": replied,
        }

    with transaction.atomic():
        message_transcript_set(
            message_id=message.pk, transcript=transcript.text, language=transcript.language
        )
        _reply_schedule(message)
    details = transcript.as_dict()
    logger.info(
        "voice note transcribed",
        extra={"message_id": message_id, **{k: v for k, v in details.items() if k != "text"}},
    )
    return {"status": "transcribed", **details, "model_loads": model_loads()}


@contextmanager
def voice_note_file(
    media: dict[str, Any] | None, *, max_bytes: int, why_missing: str = ""
) -> Iterator[Path]:
    """The audio of a message's media reference as a local file (a temporary copy when the
    media lives in a bucket, eva/media.py).

    References are relative to the media storage's root and start with the tenant's schema
    (``<schema>/whatsapp/<session>/<yyyy>/<mm>/<sha256>.ogg``, docs/streams.md); one that
    leaves that folder would let a message of one tenant read another tenant's audio. A file
    over ``max_bytes`` is refused before it is copied; a note the gateway could not store
    (``why_missing``: the message's error, e.g. "media_expired: ...") is refused saying so.
    """
    ref = (media or {}).get("ref") or (media or {}).get("key")
    if not ref:
        if why_missing:
            raise AudioRejected(
                "audio_missing", f"WhatsApp did not deliver the audio ({why_missing})"
            )
        raise AudioRejected("audio_missing", "the message has no audio attached")
    try:
        key = tenant_media_key(ref)
    except ValueError as exc:
        raise AudioRejected("audio_missing", str(exc)) from exc
    storage = shared_storage()
    try:
        size = storage.size(key)
    except FileNotFoundError as exc:
        raise AudioRejected("audio_missing", "the audio file does not exist") from exc
    if size > max_bytes:
        raise AudioRejected(
            "audio_too_large",
            f"the audio file is {size / 1e6:.1f} MB; the limit is {max_bytes / 1e6:.1f} MB",
        )
    try:
        with local_file(storage, key) as path:
            yield path
    except FileNotFoundError as exc:  # removed between the two looks
        raise AudioRejected("audio_missing", "the audio file does not exist") from exc


def _customer_language(message: Message) -> str:
    """The language we expect: the customer's known one, else the answering agent's default."""
    conversation = message.conversation
    if conversation.contact.language:
        return conversation.contact.language
    agent = agent_for_conversation(agent_id=conversation.agent_id)
    return agent.default_language if agent is not None else settings.LANGUAGE_CODE


def _reply_schedule(message: Message) -> None:
    reply_schedule(conversation_id=message.conversation_id, message_id=message.pk)


def _fail(message: Message, rejected: AudioRejected, *, language: str) -> int | None:
    """Mark the voice note failed and ask the customer to write; returns the reply's id.

    The polite reply answers the voice note like a bot reply would, so it is refused the same
    way (conversation with a human, contact opted out, turn already answered).
    """
    with transaction.atomic():
        message_mark_failed(message_id=message.pk, error=str(rejected))
        reply = bot_reply_record(
            conversation_id=message.conversation_id,
            answered_through_id=message.pk,
            replied_to_ids=[message.pk],
            reply=BotReply(
                text=voice_note_fallback_text(language),
                provider="speech",
                model="voice-note-fallback",
                latency_ms=0,
                tokens_in=0,
                tokens_out=0,
                usage_id=None,
                citations=[],
            ),
        )
        if reply is None:
            return None
        bot_reply_deliver(message_id=reply.pk)
        return reply.pk
