"""Handing voice notes to the transcription queue (workers/transcription.py)."""

from __future__ import annotations

TRANSCRIBE_TASK = "workers.transcription.transcribe_message"


def transcription_schedule(*, message_id: int) -> None:
    """Queue the transcription of stored voice note ``message_id`` of the current tenant; the
    worker stores the transcript and asks the agent engine for the reply (by name: the workers
    import every app, not the other way round)."""
    from eva.celery import app

    # Sent from inside the tenant's schema: tenant-schemas-celery carries it to the worker.
    app.send_task(TRANSCRIBE_TASK, args=[message_id])
