"""Writes on agents, and the entry point surfaces call after a customer message: reply_schedule
(with reply_turn_take / reply_turn_later, what the reply task does with it).

The reply engine itself is ``apps.agents.engine.conversation_reply`` (run by the Celery task
``workers.agent.reply_to_conversation``).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import redis
from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from apps.agents.models import Agent
from eva.db import current_schema

logger = logging.getLogger(__name__)

REPLY_TASK = "workers.agent.reply_to_conversation"

AGENT_FIELDS = (
    "name",
    "persona",
    "tone",
    "instructions",
    "sales_goals",
    "greeting",
    "language_policy",
    "default_language",
    "knowledge_scope",
    "document_ids",
    "model_route",
    "handoff_on_request",
    "handoff_keywords",
    "handoff_low_relevance_turns",
    "min_relevance",
    "handoff_outside_hours",
    "hours_start",
    "hours_end",
    "business_days",
    "timezone",
    "max_reply_chars",
    "is_active",
    "is_default",
)


def _validate(agent: Agent) -> None:
    # The one-default constraint is kept by _take_default, not reported as an error.
    agent.full_clean(exclude=["created_at", "updated_at"], validate_constraints=False)
    if agent.knowledge_scope == Agent.KnowledgeScope.SELECTED and not agent.document_ids:
        raise ValidationError({"document_ids": _("Choose at least one document, or use all.")})
    if agent.document_ids:
        from apps.knowledge.selectors import document_list

        known = set(document_list().filter(pk__in=agent.document_ids).values_list("pk", flat=True))
        unknown = sorted(set(agent.document_ids) - known)
        if unknown:
            raise ValidationError(
                {"document_ids": _("No such documents: %(ids)s.") % {"ids": unknown}}
            )
    if agent.handoff_outside_hours and (agent.hours_start is None or agent.hours_end is None):
        raise ValidationError({"hours_start": _("Set business hours to hand off outside them.")})
    if any(day not in range(1, 8) for day in agent.business_days):
        raise ValidationError({"business_days": _("Days are 1 (Monday) to 7 (Sunday).")})
    if not 50 <= agent.max_reply_chars <= 4096:
        raise ValidationError({"max_reply_chars": _("Between 50 and 4,096 characters.")})
    try:
        from zoneinfo import ZoneInfo

        ZoneInfo(agent.timezone)
    except (KeyError, ValueError) as exc:
        raise ValidationError(
            {"timezone": _("Unknown time zone %(zone)s.") % {"zone": repr(agent.timezone)}}
        ) from exc
    except Exception as exc:  # ZoneInfoNotFoundError subclasses KeyError; keep the message clear
        raise ValidationError(
            {"timezone": _("Unknown time zone %(zone)s.") % {"zone": repr(agent.timezone)}}
        ) from exc
    agent.sales_goals = list(dict.fromkeys(agent.sales_goals))
    agent.handoff_keywords = [k.strip() for k in agent.handoff_keywords if k.strip()]


def _apply(agent: Agent, fields: dict[str, Any]) -> None:
    unknown = set(fields) - set(AGENT_FIELDS)
    if unknown:
        raise ValidationError(f"Unknown agent fields: {', '.join(sorted(unknown))}.")
    for name, value in fields.items():
        setattr(agent, name, value)


def _take_default(agent: Agent) -> None:
    """Only one default agent per tenant: making one default unsets the previous one."""
    if agent.is_default:
        Agent.objects.filter(is_default=True).exclude(pk=agent.pk).update(is_default=False)


@transaction.atomic
def agent_create(**fields: Any) -> Agent:
    """Create an agent in the current tenant. The tenant's first agent becomes its default."""
    agent = Agent()
    _apply(agent, fields)
    if not Agent.objects.filter(is_default=True).exists():
        agent.is_default = True
    _validate(agent)
    _take_default(agent)
    agent.save()
    return agent


@transaction.atomic
def agent_update(*, agent: Agent, **fields: Any) -> Agent:
    _apply(agent, fields)
    _validate(agent)
    _take_default(agent)
    agent.save()
    return agent


@transaction.atomic
def agent_delete(*, agent: Agent) -> None:
    """Delete an agent. Its conversations keep their history and are answered by the default
    agent from then on (conversations hold the agent's id, not a foreign key)."""
    was_default = agent.is_default
    agent.delete()
    if was_default:
        successor = Agent.objects.filter(is_active=True).order_by("id").first()
        if successor is not None:
            Agent.objects.filter(pk=successor.pk).update(is_default=True)


# A claim outlives its task's countdown by this much: a reply task that was lost (a worker
# killed with the task in hand, a dead letter) blocks new ones for that long at most.
REPLY_CLAIM_MARGIN_S = 120.0


def _reply_claim_key(conversation_id: int) -> str:
    """The claim of a conversation of the current tenant (conversation ids are per schema)."""
    return f"{settings.EVA_STREAM_PREFIX}:reply-claim:{current_schema()}:{conversation_id}"


def _reply_claim(key: str) -> bool:
    """Claim a conversation's next reply task: True when no task was on its way (the caller
    sends one); False when one is (it answers this message too)."""
    from apps.ops.stream import redis_client

    ttl_ms = int((settings.EVA_AGENT_BURST_SECONDS + REPLY_CLAIM_MARGIN_S) * 1000)
    return bool(redis_client().set(key, "1", nx=True, px=ttl_ms))


def _reply_send(*, conversation_id: int, message_id: int, countdown: float, quiet_s: float) -> None:
    from eva.celery import app

    app.send_task(
        REPLY_TASK,
        args=[conversation_id, message_id],
        # The window travels with the task: the worker measures the same one.
        kwargs={"quiet_s": quiet_s},
        countdown=countdown,
    )


def reply_schedule(*, conversation_id: int, message_id: int) -> None:
    """Ask for a reply to a customer message, once the customer has been quiet for
    ``EVA_AGENT_BURST_SECONDS``.

    Called by surfaces after an inbound message with text is stored (voice notes: after the
    transcript is set), inside the tenant's schema. One reply task per conversation is on its
    way at a time (a claim in Redis): the first message of a burst sends it, due
    ``EVA_AGENT_BURST_SECONDS`` later; the messages after it only find the claim taken. The
    task (``reply_turn_take``) comes back later while the customer is still writing, and
    answers the whole burst in one reply. Sent after the current transaction commits, so the
    worker always sees the message. If Redis cannot be asked, the task is sent anyway (a
    second task for a burst answers nothing twice: the engine refuses duplicates).
    """
    countdown = settings.EVA_AGENT_BURST_SECONDS
    key = _reply_claim_key(conversation_id)  # now, in the tenant's schema

    def enqueue() -> None:
        try:
            claimed = _reply_claim(key)
        except redis.RedisError:
            logger.warning("reply claim unavailable; sending the reply task anyway", exc_info=True)
            claimed = True
        if claimed:
            _reply_send(
                conversation_id=conversation_id,
                message_id=message_id,
                countdown=countdown,
                quiet_s=countdown,
            )

    transaction.on_commit(enqueue)


@dataclass(frozen=True)
class ReplyTurn:
    """What a reply task found when it started (``reply_turn_take``)."""

    message_id: int | None  # the conversation's newest customer message (None: none)
    wait_s: float  # how long until the customer has been quiet for quiet_s
    quiet_s: float  # the quiet window (EVA_AGENT_BURST_SECONDS where the message was stored)


def reply_turn_take(*, conversation_id: int, quiet_s: float | None = None) -> ReplyTurn:
    """Called by the reply task as it starts: releases the conversation's claim (a message
    stored from now on sends a task of its own) and says which message to answer and whether
    the burst is over (``quiet_s``: the window the task was sent with; default
    EVA_AGENT_BURST_SECONDS). While it is not (``wait_s`` > 0), the task calls
    ``reply_turn_later``."""
    from apps.conversations.models import Message
    from apps.ops.stream import redis_client

    try:
        redis_client().delete(_reply_claim_key(conversation_id))
    except redis.RedisError:
        # The claim expires on its own; until then later messages ride on this task.
        logger.warning("could not release the reply claim", exc_info=True)
    newest = (
        Message.objects.filter(conversation_id=conversation_id, direction=Message.Direction.IN)
        .order_by("-id")
        .values_list("id", "created_at")
        .first()
    )
    if quiet_s is None:
        quiet_s = settings.EVA_AGENT_BURST_SECONDS
    if newest is None:
        return ReplyTurn(message_id=None, wait_s=0.0, quiet_s=quiet_s)
    quiet_at = newest[1] + timedelta(seconds=quiet_s)
    wait_s = max((quiet_at - timezone.now()).total_seconds(), 0.0)
    return ReplyTurn(message_id=newest[0], wait_s=wait_s, quiet_s=quiet_s)


def reply_turn_later(*, conversation_id: int, turn: ReplyTurn) -> bool:
    """Send the reply task again, due when the customer has been quiet long enough; False when
    a message stored meanwhile already sent one (it answers the burst)."""
    if turn.message_id is None or not _reply_claim(_reply_claim_key(conversation_id)):
        return False
    _reply_send(
        conversation_id=conversation_id,
        message_id=turn.message_id,
        countdown=turn.wait_s,
        quiet_s=turn.quiet_s,
    )
    return True
