"""Writes on dead letters: record, replay, discard, resolve, purge.

Every failure path of EVA ends in :func:`dead_letter_record` — Celery tasks through the base
classes in workers/base.py, stream consumers by calling it directly — so operators have one place
to look. Records live in the public schema; each function switches there itself, so callers may
be inside a tenant schema.
"""

from __future__ import annotations

import json
import socket
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from django.db import transaction
from django.db.models import Q, TextField
from django.db.models.functions import Cast
from django.utils import timezone
from django_tenants.utils import get_public_schema_name, get_tenant_model, schema_context

from apps.ops.models import DeadLetter
from apps.ops.stream import dead_letter_publish, redis_client

# Header carried by a replayed task so its outcome updates the dead letter it came from.
REPLAY_HEADER = "eva_dead_letter_id"
SCHEMA_HEADER = "_schema_name"  # tenant-schemas-celery's header naming the schema to run in


class DeadLetterError(Exception):
    """An operator's request on a dead letter cannot be carried out (message says why)."""


@contextmanager
def _public() -> Iterator[None]:
    with schema_context(get_public_schema_name()):
        yield


def _jsonable(value: Any) -> Any:
    """Arguments as they would travel through Celery's JSON serializer (odd types as text)."""
    return json.loads(json.dumps(value, default=str))


def _event(dead_letter: DeadLetter, kind: str) -> dict[str, Any]:
    return {
        "event": kind,
        "id": str(dead_letter.pk),
        "source": dead_letter.source,
        "name": dead_letter.name,
        "tenant": dead_letter.tenant_schema or "public",
        "exception_type": dead_letter.exception_type,
        "error": dead_letter.error[:2000],
        "attempts": str(dead_letter.attempts),
        "task_id": dead_letter.task_id,
        "at": dead_letter.last_failed_at.isoformat(),
    }


def dead_letters_forget(*, tenant_schema: str, mentions: list[str]) -> int:
    """Delete ``tenant_schema``'s stream dead letters whose entry names any of ``mentions`` (a
    customer's WhatsApp ids, for their erasure: such an entry holds what they wrote). Tasks'
    dead letters hold ids only and stay; so do entries no tenant was found for (whose they are
    was never known). Returns how many were deleted."""
    mentions = [mention for mention in mentions if mention]
    if not tenant_schema or tenant_schema == get_public_schema_name() or not mentions:
        return 0
    # An id stands after a quote in the stored JSON (escaped or not: the entry's event is often
    # JSON kept as a string), so "34600@c.us" does not match "134600@c.us".
    named = Q()
    for mention in mentions:
        named |= Q(payload_text__contains=f'"{mention}')
    with _public():
        deleted, _by_model = (
            DeadLetter.objects.filter(source=DeadLetter.Source.STREAM, tenant_schema=tenant_schema)
            .annotate(payload_text=Cast("payload", output_field=TextField()))
            .filter(named)
            .delete()
        )
    return deleted


def dead_letter_record(
    *,
    source: str,
    name: str,
    payload: dict[str, Any],
    tenant_schema: str | None,
    error: str,
    attempts: int,
    exception_type: str = "",
    traceback: str = "",
    task_id: str = "",
    worker_host: str = "",
) -> DeadLetter:
    """Store a failure that needs an operator, and announce it on the dead-letter stream.

    ``source`` is ``task``, ``stream`` or ``other``. For stream entries pass
    ``payload={"stream": <stream key>, "entry_id": <id>, "fields": {...}}`` so a replay can append
    the entry again. ``tenant_schema`` None (or ``public``) means no tenant (stored as "").
    A ``task_id`` seen before updates that dead letter (a redelivered task failing again)
    instead of adding one.
    """
    if source not in DeadLetter.Source.values:
        raise ValueError(f"unknown dead-letter source {source!r}")
    if tenant_schema is None or tenant_schema == get_public_schema_name():
        tenant_schema = ""
    now = timezone.now()
    fields = {
        "source": source,
        "name": name[:255],
        "tenant_schema": tenant_schema,
        "payload": _jsonable(payload),
        "exception_type": exception_type[:255],
        "error": error,
        "traceback": traceback,
        "worker_host": (worker_host or socket.gethostname())[:255],
        "last_failed_at": now,
    }
    with _public(), transaction.atomic():
        existing = (
            DeadLetter.objects.select_for_update().filter(task_id=task_id).first()
            if task_id
            else None
        )
        if existing is None:
            dead_letter = DeadLetter.objects.create(
                task_id=task_id, attempts=max(1, attempts), first_failed_at=now, **fields
            )
        else:
            for key, value in fields.items():
                setattr(existing, key, value)
            existing.attempts = max(existing.attempts, attempts)
            existing.save()
            dead_letter = existing
        transaction.on_commit(lambda: dead_letter_publish(_event(dead_letter, "dead_letter")))
    return dead_letter


def dead_letter_replay_failed(
    *,
    dead_letter_id: int,
    replay_task_id: str,
    error: str,
    exception_type: str,
    traceback: str,
    attempts: int,
    worker_host: str,
) -> DeadLetter | None:
    """A replay failed for good: the dead letter stays ``new`` with the latest failure."""
    with _public(), transaction.atomic():
        dead_letter = DeadLetter.objects.select_for_update().filter(pk=dead_letter_id).first()
        if dead_letter is None:
            return None
        dead_letter.error = error
        dead_letter.exception_type = exception_type[:255]
        dead_letter.traceback = traceback
        dead_letter.attempts += max(1, attempts)
        dead_letter.worker_host = worker_host[:255]
        dead_letter.last_failed_at = timezone.now()
        if dead_letter.replay_task_id == replay_task_id:
            dead_letter.replay_task_id = ""
        dead_letter.save()
        transaction.on_commit(lambda: dead_letter_publish(_event(dead_letter, "replay_failed")))
    return dead_letter


def dead_letter_mark_replayed(*, dead_letter_id: int, replay_task_id: str) -> bool:
    """The replay ``replay_task_id`` succeeded: mark the dead letter ``replayed`` (once).

    The row is locked first, by its id: ``dead_letter_replay`` sends the task before it commits,
    so a fast task gets here while the row still shows the previous replay id. An UPDATE
    filtered on the new id would then skip the row (the row it sees does not match, and
    PostgreSQL rechecks only rows that did) and the success would be lost; the lock waits for
    that commit and returns the row as committed."""
    with _public(), transaction.atomic():
        dead_letter = DeadLetter.objects.select_for_update().filter(pk=dead_letter_id).first()
        if (
            dead_letter is None
            or dead_letter.replay_task_id != replay_task_id
            or dead_letter.status != DeadLetter.Status.NEW
        ):
            return False
        dead_letter.status = DeadLetter.Status.REPLAYED
        dead_letter.replay_task_id = ""
        dead_letter.status_changed_at = timezone.now()
        dead_letter.save(update_fields=["status", "replay_task_id", "status_changed_at"])
        return True


@dataclass(frozen=True)
class ReplayOutcome:
    dead_letter_id: int
    sent: bool
    detail: str  # the new task id, or why nothing was sent
    replay_task_id: str = ""


def _tenant_exists(schema: str) -> bool:
    return get_tenant_model().objects.filter(schema_name=schema).exists()


def dead_letter_replay(*, dead_letter_id: int, force: bool = False) -> ReplayOutcome:
    """Send a dead letter's work again, in the tenant schema it failed in.

    Only ``new`` dead letters are replayed, and not while an earlier replay is still in flight
    (``force`` sends anyway, and also replays ``replayed`` ones); so running the same replay
    command twice sends the work once. Tasks are re-sent by name with their original arguments
    and the schema header; the task's success marks the record ``replayed``, its failure updates
    it. Stream entries are appended to their stream again and marked ``replayed`` right away
    (the consumer stores messages idempotently).
    """
    from eva.celery import app  # the Celery app is composition, not an EVA app

    with _public(), transaction.atomic():
        dead_letter = DeadLetter.objects.select_for_update().filter(pk=dead_letter_id).first()
        if dead_letter is None:
            raise DeadLetterError(f"dead letter {dead_letter_id} does not exist")
        if dead_letter.status in (DeadLetter.Status.DISCARDED, DeadLetter.Status.RESOLVED):
            return ReplayOutcome(dead_letter.pk, False, f"skipped: it is {dead_letter.status}")
        if dead_letter.status == DeadLetter.Status.REPLAYED and not force:
            return ReplayOutcome(dead_letter.pk, False, "skipped: already replayed")
        if dead_letter.replay_task_id and not force:
            return ReplayOutcome(
                dead_letter.pk,
                False,
                f"skipped: replay {dead_letter.replay_task_id} is still running",
            )
        schema = dead_letter.tenant_schema
        if schema and not _tenant_exists(schema):
            raise DeadLetterError(
                f"dead letter {dead_letter.pk} belongs to tenant schema {schema!r}, "
                "which no longer exists"
            )
        now = timezone.now()
        dead_letter.replays += 1
        dead_letter.last_replayed_at = now
        if dead_letter.source == DeadLetter.Source.TASK:
            replay_task_id = f"replay-{dead_letter.pk}-{uuid.uuid4().hex}"
            dead_letter.replay_task_id = replay_task_id
            dead_letter.status = DeadLetter.Status.NEW
            dead_letter.save(
                update_fields=["replays", "last_replayed_at", "replay_task_id", "status"]
            )
            # Sent inside the transaction: if the broker refuses, nothing is marked as sent. The
            # task's own success/failure update waits on this row lock until we commit.
            app.send_task(
                dead_letter.name,
                args=dead_letter.args,
                kwargs=dead_letter.kwargs,
                task_id=replay_task_id,
                headers={
                    SCHEMA_HEADER: schema or get_public_schema_name(),
                    REPLAY_HEADER: str(dead_letter.pk),
                },
            )
            return ReplayOutcome(dead_letter.pk, True, replay_task_id, replay_task_id)
        stream = dead_letter.payload.get("stream")
        entry = dead_letter.payload.get("fields")
        if not isinstance(stream, str) or not isinstance(entry, dict) or not entry:
            raise DeadLetterError(
                f"dead letter {dead_letter.pk} ({dead_letter.source}) has no stream and fields "
                "to append again; resolve or discard it instead"
            )
        entry_id = str(redis_client().xadd(stream, {str(k): str(v) for k, v in entry.items()}))
        dead_letter.status = DeadLetter.Status.REPLAYED
        dead_letter.status_changed_at = now
        dead_letter.save(
            update_fields=["replays", "last_replayed_at", "status", "status_changed_at"]
        )
        return ReplayOutcome(dead_letter.pk, True, f"appended to {stream} as {entry_id}")


def _set_status(*, dead_letter_id: int, status: str, note: str) -> DeadLetter:
    with _public(), transaction.atomic():
        dead_letter = DeadLetter.objects.select_for_update().filter(pk=dead_letter_id).first()
        if dead_letter is None:
            raise DeadLetterError(f"dead letter {dead_letter_id} does not exist")
        dead_letter.status = status
        dead_letter.status_changed_at = timezone.now()
        dead_letter.replay_task_id = ""
        if note:
            dead_letter.note = f"{dead_letter.note}\n{note}".strip()
        dead_letter.save(update_fields=["status", "status_changed_at", "replay_task_id", "note"])
    return dead_letter


def dead_letter_discard(*, dead_letter_id: int, note: str = "") -> DeadLetter:
    """Drop a dead letter deliberately: kept for the record, never replayed."""
    return _set_status(dead_letter_id=dead_letter_id, status=DeadLetter.Status.DISCARDED, note=note)


def dead_letter_resolve(*, dead_letter_id: int, note: str = "") -> DeadLetter:
    """The failure was handled some other way (fixed by hand): close it without a replay."""
    return _set_status(dead_letter_id=dead_letter_id, status=DeadLetter.Status.RESOLVED, note=note)


def dead_letter_purge(*, older_than: timedelta, statuses: list[str] | None = None) -> int:
    """Delete dead letters whose last failure is older than ``older_than``; returns the count.

    ``statuses`` defaults to the closed ones (replayed, resolved, discarded): a ``new`` dead
    letter is only deleted when asked for by name, so unhandled work is never purged by accident.
    """
    if statuses is None:
        statuses = [
            DeadLetter.Status.REPLAYED,
            DeadLetter.Status.RESOLVED,
            DeadLetter.Status.DISCARDED,
        ]
    unknown = set(statuses) - set(DeadLetter.Status.values)
    if unknown:
        raise DeadLetterError(f"unknown status(es): {', '.join(sorted(unknown))}")
    with _public():
        deleted, _ = DeadLetter.objects.filter(
            last_failed_at__lt=timezone.now() - older_than, status__in=statuses
        ).delete()
    return deleted
