"""Reads of contacts, conversations and messages; every query runs in the current tenant's
schema, which is the tenant boundary."""

from __future__ import annotations

from django.db.models import F, OuterRef, Q, QuerySet, Subquery

from apps.accounts.models import User
from apps.conversations.models import Contact, Conversation, Message


def conversation_list(
    *,
    mode: str | None = None,
    unread: bool = False,
    stage: str | None = None,
    agent_id: int | None = None,
    channel: str | None = None,
    search: str | None = None,
    assigned_to_id: int | None = None,
    unassigned: bool = False,
) -> QuerySet[Conversation]:
    """The inbox. Without ``channel`` it lists real customers (simulator chats are tests)."""
    qs = Conversation.objects.select_related("contact", "assigned_to")
    if assigned_to_id is not None:
        qs = qs.filter(assigned_to_id=assigned_to_id)
    if unassigned:
        qs = qs.filter(assigned_to__isnull=True)
    if channel:
        qs = qs.filter(channel=channel)
    else:
        qs = qs.exclude(channel=Conversation.Channel.SIMULATOR)
    if mode:
        qs = qs.filter(mode=mode)
    if unread:
        qs = qs.filter(unread_count__gt=0)
    if stage:
        qs = qs.filter(contact__stage=stage)
    if agent_id:
        qs = qs.filter(agent_id=agent_id)
    if search:
        qs = qs.filter(
            Q(contact__name__icontains=search)
            | Q(contact__phone__icontains=search)
            | Q(contact__email__icontains=search)
            | Q(last_message_preview__icontains=search)
        )
    return qs.order_by("-last_message_at", "-id")


def conversation_get_for_user(*, user: User, conversation_id: int) -> Conversation | None:
    """Every member of the tenant (owners, admins, sales staff) works the tenant's inbox."""
    if not user.is_authenticated:
        return None
    return (
        Conversation.objects.select_related("contact", "assigned_to")
        .filter(pk=conversation_id)
        .first()
    )


def conversation_for_simulator(*, contact_wa_id: str) -> Conversation | None:
    return (
        Conversation.objects.select_related("contact")
        .filter(channel=Conversation.Channel.SIMULATOR, contact__wa_id=contact_wa_id)
        .first()
    )


def thread_messages(*, conversation: Conversation, after_id: int = 0) -> QuerySet[Message]:
    return (
        Message.objects.filter(conversation=conversation, id__gt=after_id)
        .select_related("author")
        .order_by("id")
    )


def needs_human_count() -> int:
    """Conversations waiting for staff: in human mode with unread customer messages, or handed
    over and not yet assigned. Shown as the inbox badge; simulator chats are staff's own tests
    (their page links to the chat in the inbox), not customers waiting."""
    return (
        Conversation.objects.filter(mode=Conversation.Mode.HUMAN)
        .exclude(channel=Conversation.Channel.SIMULATOR)
        .filter(Q(unread_count__gt=0) | Q(assigned_to__isnull=True))
        .count()
    )


def contact_list(*, stage: str | None = None, search: str | None = None) -> QuerySet[Contact]:
    qs = Contact.objects.filter(is_simulated=False)
    if stage:
        qs = qs.filter(stage=stage)
    if search:
        qs = qs.filter(
            Q(name__icontains=search) | Q(phone__icontains=search) | Q(email__icontains=search)
        )
    return qs.order_by("-last_contact_at", "-id")


def lead_list(*, stage: str | None = None, search: str | None = None) -> QuerySet[Contact]:
    """The leads page and its CSV: real contacts (newest contact first), each with the id of its
    latest conversation (``latest_conversation_id``, None when it has none)."""
    latest = (
        Conversation.objects.filter(contact=OuterRef("pk"))
        .order_by(F("last_message_at").desc(nulls_last=True), "-id")
        .values("id")[:1]
    )
    return contact_list(stage=stage, search=search).annotate(
        latest_conversation_id=Subquery(latest)
    )


def contact_get_for_user(*, user: User, contact_id: int) -> Contact | None:
    if not user.is_authenticated:
        return None
    return Contact.objects.filter(pk=contact_id).first()


def message_list(*, conversation: Conversation) -> QuerySet[Message]:
    return thread_messages(conversation=conversation)


def overview_counts() -> dict[str, int]:
    real = Conversation.objects.exclude(channel=Conversation.Channel.SIMULATOR)
    return {
        "conversations": real.count(),
        "bot": real.filter(mode=Conversation.Mode.BOT).count(),
        "human": real.filter(mode=Conversation.Mode.HUMAN).count(),
        "unread": real.filter(unread_count__gt=0).count(),
        "leads": Contact.objects.filter(is_simulated=False).count(),
        "qualified": Contact.objects.filter(
            is_simulated=False, stage=Contact.Stage.QUALIFIED
        ).count(),
    }
