"""manage.py consume_inbound: the WhatsApp inbound stream into the tenants' conversations.

A surface: it composes channels (stream mechanics, storage) with the agent engine (replies) and
the transcription queue (voice notes). Run as many as needed: they share the consumer group.
"""

from __future__ import annotations

import gc
import logging
import signal
from collections.abc import Callable
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandParser
from django.db import close_old_connections

from apps.channels import publisher
from apps.channels.consumer import DeadLetter, InboundConsumer
from apps.channels.inbound import InboundEventHandler
from apps.conversations.models import Message
from apps.ops.services import dead_letter_record
from apps.speech.services import transcription_schedule

logger = logging.getLogger("apps.channels.consume_inbound")

# Refusals that say nothing trustworthy about the tenant: the dead letter carries none.
_UNTRUSTED = {"invalid_event", "unknown_session", "wrong_tenant"}


def schedule_reply(message: Message) -> None:
    """Hand a stored customer text to the agent engine (it debounces bursts)."""
    from apps.agents.services import reply_schedule

    reply_schedule(conversation_id=message.conversation_id, message_id=message.pk)


def transcribe(message: Message) -> None:
    """Voice notes go to the transcription queue."""
    transcription_schedule(message_id=message.pk)


def record_dead_letter(stream: str) -> Any:
    def sink(dead: DeadLetter) -> None:
        tenant = None
        if dead.document is not None and dead.error_code not in _UNTRUSTED:
            tenant = dead.document.get("tenant_schema")
        dead_letter_record(
            source="stream",
            name=f"consume_inbound.{(dead.document or {}).get('type', 'unparsed')}",
            # The original fields, so an operator's replay appends the entry again.
            payload={
                "stream": stream,
                "entry_id": dead.entry_id,
                "fields": {"event": dead.raw_event},
            },
            tenant_schema=tenant,
            error=dead.error,  # the code is the exception type
            attempts=dead.deliveries,
            exception_type=dead.error_code,
            # One dead letter per stream entry, however often it is buried.
            task_id=f"{stream}:{dead.entry_id}",
        )

    return sink


class Command(BaseCommand):
    help = (
        "Consume WhatsApp events from the inbound Redis stream (consumer group "
        "inbound-consumers): store messages in their tenant, update statuses and sessions, "
        "hand texts to the agent engine and voice notes to transcription. Each read (up to "
        "--batch entries) is stored in one transaction per tenant; entries are acknowledged once "
        "the database has them on disk. SIGTERM stops it after the read in hand."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--consumer", help="consumer name (default <hostname>-<pid>)")
        parser.add_argument(
            "--batch",
            type=int,
            default=settings.EVA_INBOUND_BATCH,
            help="entries read (and stored together) at most per read",
        )
        parser.add_argument(
            "--block-ms",
            type=int,
            default=settings.EVA_INBOUND_BLOCK_MS,
            help="how long one read waits for new entries (ms)",
        )
        parser.add_argument(
            "--claim-idle-ms",
            type=int,
            default=settings.EVA_INBOUND_CLAIM_IDLE_MS,
            help="reclaim entries pending this long on any consumer (XAUTOCLAIM)",
        )
        parser.add_argument(
            "--max-deliveries",
            type=int,
            default=settings.EVA_INBOUND_MAX_DELIVERIES,
            help="dead-letter an entry after this many failed deliveries",
        )
        parser.add_argument(
            "--ack-delay-ms",
            type=int,
            default=settings.EVA_INBOUND_ACK_DELAY_MS,
            help=(
                "while busy, check this often (ms) which stored entries are on disk and "
                "acknowledge them; after this long without new entries, flush and acknowledge"
            ),
        )
        parser.add_argument(
            "--until-idle",
            action="store_true",
            help="exit once a read returns nothing (drain the stream and stop)",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        handler = InboundEventHandler(
            on_customer_text=schedule_reply, on_voice_note=transcribe, wait_for_disk=False
        )

        def handle_read(
            events: list[dict[str, Any]], connection_needed: Callable[[], None]
        ) -> Callable[[], list[BaseException | None]]:
            def needed() -> None:
                connection_needed()  # the read before is finished: the connection is free
                # A long-running process: drop connections the database closed or that aged out.
                close_old_connections()

            # A read of customer messages is stored while the consumer reads the next one.
            return handler.submit_batch(events, needed)

        consumer = InboundConsumer(
            client=publisher.redis_client(),
            submit_handler=handle_read,
            # Messages commit without waiting for the disk; entries are acknowledged once it
            # has them (see apps.channels.consumer).
            make_durable=handler.make_durable,
            durable_position=handler.durable_position,
            ack_delay_ms=options["ack_delay_ms"],
            dead_letter=lambda dead: None,
            consumer=options["consumer"],
            batch=options["batch"],
            block_ms=options["block_ms"],
            claim_idle_ms=options["claim_idle_ms"],
            max_deliveries=options["max_deliveries"],
        )
        consumer.dead_letter = record_dead_letter(consumer.stream)

        def stop(signum: int, frame: object) -> None:
            logger.info("signal %s: stopping after the read in hand", signum)
            consumer.stop()

        signal.signal(signal.SIGTERM, stop)
        signal.signal(signal.SIGINT, stop)
        logger.info(
            "consuming %s as %s in group %s", consumer.stream, consumer.consumer, consumer.group
        )
        # Everything loaded so far (Django, the apps, the contract) lives as long as the process:
        # kept out of the garbage collector's scans, a collection no longer stalls a read.
        gc.collect()
        gc.freeze()
        consumer.run(until_idle=options["until_idle"])
        logger.info("stopped after %s entries", consumer.processed)
