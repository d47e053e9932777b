"""The dashboard inbox: conversation list with filters, thread view with live updates (HTMX
polling), take over / return to bot / close, staff replies, lead editing."""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import ValidationError
from django.core.files import File
from django.http import FileResponse, Http404, HttpRequest, HttpResponse, StreamingHttpResponse
from django.http.response import HttpResponseBase
from django.shortcuts import redirect, render
from django.utils.http import content_disposition_header
from django.utils.translation import gettext as _
from django.utils.translation import ngettext
from django.views.decorators.http import require_POST

from apps.accounts.models import User
from apps.accounts.selectors import user_list
from apps.conversations.forms import InboxFilterForm, LeadForm, StaffReplyForm
from apps.conversations.models import Conversation, Message
from apps.conversations.selectors import (
    conversation_get_for_user,
    conversation_list,
    needs_human_count,
    thread_messages,
)
from apps.conversations.services import (
    contact_erase,
    contact_update,
    conversation_assign,
    conversation_close,
    conversation_handoff,
    conversation_mark_read,
    conversation_return_to_bot,
    staff_message_send,
)
from apps.conversations.views.paging import page_of
from eva.media import (
    STORAGE_ERRORS,
    MediaStorageUnavailable,
    served,
    shared_storage,
    tenant_media_key,
    unavailable_response,
)

logger = logging.getLogger(__name__)
PAGE_SIZE = 50  # conversations a page of the inbox shows, newest first


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
        assigned_to_id=_user(request).pk if filters.get("assigned") == "me" else None,
        unassigned=filters.get("assigned") == "nobody",
    )
    page, pager_query = page_of(request, conversations, PAGE_SIZE)
    context = {
        "form": form,
        "conversations": page,
        "page": page,
        # The rows refresh themselves with the same filters and page; the pager keeps the filters.
        "query": request.GET.urlencode(),
        "pager_query": pager_query,
    }
    if request.htmx:  # type: ignore[attr-defined]
        return render(request, "conversations/_rows.html", context)
    return render(request, "conversations/inbox.html", context)


def _thread_context(request: HttpRequest, conversation: Conversation) -> dict[str, object]:
    return {
        "conversation": conversation,
        "contact": conversation.contact,
        "thread": thread_messages(conversation=conversation),
    }


def _team() -> list[User]:
    """Who a conversation can be given to: the tenant's active members."""
    return list(user_list().filter(is_active=True))


@login_required
def conversation_view(request: HttpRequest, conversation_id: int) -> HttpResponse:
    conversation = _conversation_or_404(request, conversation_id)
    conversation_mark_read(conversation=conversation)
    context = _thread_context(request, conversation) | {
        "reply_form": StaffReplyForm(),
        "lead_form": LeadForm(instance=conversation.contact),
        "team": _team(),
    }
    return render(request, "conversations/thread.html", context)


# Shown in the page (a player, a picture); anything else is downloaded. Never inline: HTML, SVG,
# PDF or any type a browser could run as the dashboard's own page.
_INLINE_TYPES = frozenset(
    {
        "audio/ogg",
        "audio/mpeg",
        "audio/mp4",
        "audio/aac",
        "audio/amr",
        "audio/wav",
        "image/jpeg",
        "image/png",
        "image/webp",
        "image/gif",
    }
)


_RANGE = re.compile(r"^bytes=(\d*)-(\d*)$")


def _window(stored: File, start: int, length: int) -> Iterator[bytes]:
    with stored:
        stored.seek(start)
        while length > 0:
            data = stored.read(min(length, 64 * 1024))
            if not data:
                return
            length -= len(data)
            yield data


@login_required
def message_media_view(
    request: HttpRequest, conversation_id: int, message_id: int
) -> HttpResponseBase:
    """The file a message carries (a voice note, a picture, a document), read from the media
    storage, for the thread's player, picture or download link. Answers byte ranges: a
    browser's player reads an Ogg voice note's end to learn its length, and seeks."""
    conversation = _conversation_or_404(request, conversation_id)
    message = Message.objects.filter(conversation=conversation, pk=message_id).first()
    media = (message.media if message is not None else None) or {}
    try:
        key = tenant_media_key(media.get("ref"))
        stored = shared_storage().open(key, "rb")
    except (ValueError, FileNotFoundError) as exc:
        raise Http404(_("This file is not stored (any more).")) from exc
    except STORAGE_ERRORS:
        logger.exception("media storage unavailable", extra={"message_id": message_id})
        return unavailable_response()
    mime = str(media.get("mime") or "").split(";")[0].strip().lower()
    inline = mime in _INLINE_TYPES
    content_type = mime if inline else "application/octet-stream"
    name = str(media.get("filename") or key.rsplit("/", 1)[-1])
    size = stored.size
    asked = _RANGE.match(request.headers.get("Range", ""))
    response: HttpResponseBase
    if asked and asked.group(1) + asked.group(2) and size:
        first, last = asked.groups()
        if first:
            start, end = int(first), min(int(last) if last else size - 1, size - 1)
        else:  # the last N bytes
            start, end = max(size - int(last), 0), size - 1
        if start > end or start >= size:
            stored.close()
            response = HttpResponse(status=416)
            response["Content-Range"] = f"bytes */{size}"
            return response
        response = StreamingHttpResponse(
            _window(stored, start, end - start + 1), status=206, content_type=content_type
        )
        response["Content-Range"] = f"bytes {start}-{end}/{size}"
        response["Content-Length"] = str(end - start + 1)
        response["Content-Disposition"] = content_disposition_header(not inline, name) or ""
    else:
        response = FileResponse(
            stored,
            content_type=content_type,
            as_attachment=not inline,
            filename=name,
        )
    response["Accept-Ranges"] = "bytes"
    response["Cache-Control"] = "private, max-age=3600"
    return served(response)


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
def conversation_assign_view(request: HttpRequest, conversation_id: int) -> HttpResponse:
    """Give the conversation to a team member ("" : to nobody)."""
    conversation = _conversation_or_404(request, conversation_id)
    chosen = request.POST.get("assignee", "").strip()
    try:
        if chosen and not chosen.isdigit():
            raise ValidationError(_("Choose an active member of your team."))
        conversation_assign(
            conversation_id=conversation.pk,
            assignee_id=int(chosen) if chosen else None,
            user=_user(request),
        )
    except ValidationError as exc:
        messages.error(request, " ".join(exc.messages))
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
    form = StaffReplyForm(request.POST, request.FILES)
    if form.is_valid():
        attachment = form.cleaned_data["attachment"]
        try:
            staff_message_send(
                conversation_id=conversation.pk,
                author=_user(request),
                text=form.cleaned_data["text"],
                attachment=attachment,
                attachment_name=attachment.name if attachment else "",
            )
        except ValidationError as exc:
            messages.error(request, " ".join(exc.messages))
        except MediaStorageUnavailable as exc:
            messages.error(request, str(exc))
    else:
        refused = [
            text for errors in form.errors.as_data().values() for e in errors for text in e.messages
        ]
        messages.error(request, " ".join(refused))
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
@require_POST
def contact_erase_view(request: HttpRequest, conversation_id: int) -> HttpResponse:
    """Erase the conversation's customer (owners and admins: a data-protection request)."""
    conversation = _conversation_or_404(request, conversation_id)
    erased = contact_erase(contact_id=conversation.contact_id, by=_user(request))
    conversations = ngettext(
        "%(count)s conversation", "%(count)s conversations", erased.conversations
    ) % {"count": erased.conversations}
    sent = ngettext("%(count)s message", "%(count)s messages", erased.messages) % {
        "count": erased.messages
    }
    messages.success(
        request,
        _("Customer erased: %(conversations)s, %(messages)s.")
        % {"conversations": conversations, "messages": sent},
    )
    return redirect("leads:list")


@login_required
def needs_human_badge_view(request: HttpRequest) -> HttpResponse:
    return render(request, "conversations/_badge.html", {"count": needs_human_count()})
