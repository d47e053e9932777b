"""Agent replies (queue ``agent``): run the reply engine, then hand the reply to the channel.

Thin on purpose: the engine (apps.agents.engine) decides everything; retries with backoff and
dead letters come from ``TenantBoundTask``. Re-running the task is safe: a turn already
answered is skipped, and a duplicate reply is refused under the conversation's row lock.
"""

from __future__ import annotations

from typing import Any

from apps.agents.engine import conversation_reply
from apps.conversations.services import DELIVERY_TASK
from eva.celery import app
from workers.base import TenantBoundTask


@app.task(name="workers.agent.reply_to_conversation", base=TenantBoundTask)
def reply_to_conversation(conversation_id: int, message_id: int) -> dict[str, Any]:
    outcome = conversation_reply(conversation_id=conversation_id, message_id=message_id)
    if outcome.message_id is not None:
        # The reply row is committed (the engine's transaction ended), so the delivery task
        # always finds it. Sent by name: the channels app owns delivery.
        app.send_task(DELIVERY_TASK, args=[outcome.message_id])
    return {
        "status": outcome.status,
        "reason": outcome.reason,
        "message_id": outcome.message_id,
        "lead_fields": outcome.lead_fields,
        "timings_ms": outcome.timings_ms,
    }
