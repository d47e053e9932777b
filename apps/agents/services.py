"""Writes on agents, and the entry point surfaces call after a customer message: reply_schedule.

The reply engine itself is ``apps.agents.engine.conversation_reply`` (run by the Celery task
``workers.agent.reply_to_conversation``).
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils.translation import gettext as _

from apps.agents.models import Agent

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


def reply_schedule(*, conversation_id: int, message_id: int) -> None:
    """Ask for a reply to a customer message, after a short quiet window.

    Called by surfaces after an inbound message with text is stored (voice notes: after the
    transcript is set). The task runs ``EVA_AGENT_BURST_SECONDS`` later; a task that then finds a
    newer customer message in the conversation does nothing, because that message's own task
    answers the whole burst in one reply. Enqueued after the current transaction commits, so the
    worker always sees the message.
    """
    from eva.celery import app

    countdown = settings.EVA_AGENT_BURST_SECONDS

    def enqueue() -> None:
        app.send_task(REPLY_TASK, args=[conversation_id, message_id], countdown=countdown)

    transaction.on_commit(enqueue)
