"""The dashboard inbox: conversation list with filters, thread view with live updates (HTMX
polling), take over / return to bot / close, staff replies, lead editing."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import ValidationError
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils.translation import gettext as _
from django.views.decorators.http import require_POST

from apps.accounts.models import User
from apps.conversations.forms import InboxFilterForm, LeadForm, StaffReplyForm
from apps.conversations.models import Conversation
from apps.conversations.selectors import (
    conversation_get_for_user,
    conversation_list,
    needs_human_count,
    thread_messages,
)
from apps.conversations.services import (
    contact_update,
    conversation_close,
    conversation_handoff,
    conversation_mark_read,
    conversation_return_to_bot,
    staff_message_send,
)


def _user(request: HttpRequest) -> User:
    return request.user  # type: ignore[return-value]


def _conversation_or_404(request: HttpRequest, conversation_id: int) -> Conversation:
    conversation = conversation_get_for_user(user=_user(request), conversation_id=conversation_id)
    if conversation is None:
        raise Http404
    return conversation


def _agent_choices() -> list[tuple[object, str]]:
    # Views are a surface and may read the agents app; conversations' models and services do
    # not depend on it.
    from apps.agents.selectors import agent_list

    return [("", _("Any agent")), *((a.pk, a.name) for a in agent_list())]


@login_required
def inbox_view(request: HttpRequest) -> HttpResponse:
    form = InboxFilterForm(request.GET or None)
    form.fields["agent"].choices = _agent_choices()  # type: ignore[attr-defined]
    filters = form.cleaned_data if form.is_valid() else {}
    conversations = conversation_list(
        mode=filters.get("mode") or None,
        unread=bool(filters.get("unread")),
        stage=filters.get("stage") or None,
        agent_id=filters.get("agent"),
        channel=filters.get("channel") or None,
        search=filters.get("q") or None,
    )[:200]
    context = {"form": form, "conversations": conversations, "query": request.GET.urlencode()}
    if request.htmx:  # type: ignore[attr-defined]
        return render(request, "conversations/_rows.html", context)
    return render(request, "conversations/inbox.html", context)


def _thread_context(request: HttpRequest, conversation: Conversation) -> dict[str, object]:
    return {
        "conversation": conversation,
        "contact": conversation.contact,
        "thread": thread_messages(conversation=conversation),
    }


@login_required
def conversation_view(request: HttpRequest, conversation_id: int) -> HttpResponse:
    conversation = _conversation_or_404(request, conversation_id)
    conversation_mark_read(conversation=conversation)
    context = _thread_context(request, conversation) | {
        "reply_form": StaffReplyForm(),
        "lead_form": LeadForm(instance=conversation.contact),
    }
    return render(request, "conversations/thread.html", context)


@login_required
def conversation_thread_view(request: HttpRequest, conversation_id: int) -> HttpResponse:
    """The live part of a thread (messages + mode), polled by the page."""
    conversation = _conversation_or_404(request, conversation_id)
    conversation_mark_read(conversation=conversation)
    return render(request, "conversations/_thread.html", _thread_context(request, conversation))


def _after_action(request: HttpRequest, conversation: Conversation) -> HttpResponse:
    if request.htmx:  # type: ignore[attr-defined]
        conversation.refresh_from_db()
        return render(request, "conversations/_thread.html", _thread_context(request, conversation))
    return redirect("conversations:detail", conversation_id=conversation.pk)


@login_required
@require_POST
def conversation_takeover_view(request: HttpRequest, conversation_id: int) -> HttpResponse:
    conversation = _conversation_or_404(request, conversation_id)
    conversation_handoff(
        conversation_id=conversation.pk,
        reason=_("taken over by %(email)s") % {"email": _user(request).email},
        user=_user(request),
    )
    return _after_action(request, conversation)


@login_required
@require_POST
def conversation_return_view(request: HttpRequest, conversation_id: int) -> HttpResponse:
    conversation = _conversation_or_404(request, conversation_id)
    conversation_return_to_bot(conversation_id=conversation.pk, user=_user(request))
    return _after_action(request, conversation)


@login_required
@require_POST
def conversation_close_view(request: HttpRequest, conversation_id: int) -> HttpResponse:
    conversation = _conversation_or_404(request, conversation_id)
    conversation_close(conversation_id=conversation.pk, user=_user(request))
    return _after_action(request, conversation)


@login_required
@require_POST
def conversation_reply_view(request: HttpRequest, conversation_id: int) -> HttpResponse:
    conversation = _conversation_or_404(request, conversation_id)
    form = StaffReplyForm(request.POST)
    if form.is_valid():
        try:
            staff_message_send(
                conversation_id=conversation.pk,
                author=_user(request),
                text=form.cleaned_data["text"],
            )
        except ValidationError as exc:
            messages.error(request, " ".join(exc.messages))
    else:
        messages.error(request, _("Write a message first."))
    return _after_action(request, conversation)


@login_required
@require_POST
def lead_edit_view(request: HttpRequest, conversation_id: int) -> HttpResponse:
    conversation = _conversation_or_404(request, conversation_id)
    contact = conversation.contact
    form = LeadForm(request.POST, instance=contact)
    saved = False
    if form.is_valid():
        try:
            contact_update(contact=contact, **form.cleaned_data)
            saved = True
        except ValidationError as exc:
            for field, errors in getattr(exc, "message_dict", {"__all__": exc.messages}).items():
                form.add_error(field if field in form.fields else None, errors)
    if request.htmx:  # type: ignore[attr-defined]
        return render(
            request,
            "conversations/_lead_form.html",
            {"conversation": conversation, "lead_form": form, "saved": saved},
        )
    if saved:
        messages.success(request, _("Lead saved."))
    return redirect("conversations:detail", conversation_id=conversation.pk)


@login_required
def needs_human_badge_view(request: HttpRequest) -> HttpResponse:
    return render(request, "conversations/_badge.html", {"count": needs_human_count()})
