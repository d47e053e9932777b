"""Agent replies (queue ``agent``): run the reply engine, then hand the reply to the channel.

Thin on purpose: one task per conversation and burst (apps.agents.services.reply_schedule; the
task comes back later while the customer is still writing), then the engine
(apps.agents.engine) decides everything; retries with backoff and
dead letters come from ``TenantBoundTask``. Re-running the task is safe: a turn already
answered is skipped, and a duplicate reply is refused under the conversation's row lock.
"""

from __future__ import annotations

from typing import Any

from apps.agents.engine import conversation_reply
from apps.agents.services import reply_turn_later, reply_turn_take
from apps.conversations.services import DELIVERY_TASK
from eva.celery import app
from workers.base import TenantBoundTask


@app.task(name="workers.agent.reply_to_conversation", base=TenantBoundTask)
def reply_to_conversation(
    conversation_id: int, message_id: int, quiet_s: float | None = None
) -> dict[str, Any]:
    turn = reply_turn_take(conversation_id=conversation_id, quiet_s=quiet_s)
    if turn.wait_s > 0:
        # The customer wrote again within EVA_AGENT_BURST_SECONDS: come back once they stop
        # (or leave it to the task a message stored meanwhile has sent).
        again = reply_turn_later(conversation_id=conversation_id, turn=turn)
        return {
            "status": "later" if again else "skipped",
            "reason": "the customer is still writing",
            "message_id": None,
            "wait_s": round(turn.wait_s, 3),
        }
    outcome = conversation_reply(
        conversation_id=conversation_id, message_id=max(message_id, turn.message_id or 0)
    )
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
