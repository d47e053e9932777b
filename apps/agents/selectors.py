from __future__ import annotations

from django.db.models import QuerySet

from apps.accounts.models import User
from apps.agents.models import Agent


def agent_list() -> QuerySet[Agent]:
    return Agent.objects.order_by("-is_default", "name", "id")


def agent_get(*, agent_id: int) -> Agent | None:
    """An agent of the current tenant (the schema is the tenant boundary), or None."""
    return Agent.objects.filter(pk=agent_id).first()


def agent_get_for_user(*, user: User, agent_id: int) -> Agent | None:
    """Every member of the tenant may see its agents and use the simulator; only owners and
    admins change them (checked by the views that write)."""
    if not user.is_authenticated:
        return None
    return agent_get(agent_id=agent_id)


def agent_for_conversation(*, agent_id: int | None) -> Agent | None:
    """The agent answering a conversation: the one it is bound to if still active, else the
    default agent, else the oldest active agent."""
    active = Agent.objects.filter(is_active=True)
    if agent_id is not None:
        bound = active.filter(pk=agent_id).first()
        if bound is not None:
            return bound
    return active.order_by("-is_default", "id").first()
