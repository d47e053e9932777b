"""Dashboard pages: agents (list, create, edit, delete) and the chat simulator."""

from __future__ import annotations

import logging
import secrets
import uuid

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone
from django.utils.translation import gettext as _
from django.views.decorators.http import require_POST

from apps.accounts.models import User
from apps.agents.forms import AgentForm
from apps.agents.models import Agent
from apps.agents.selectors import agent_get_for_user, agent_list
from apps.agents.services import agent_create, agent_delete, agent_update, reply_schedule
from apps.channels.models import WhatsAppSession
from apps.channels.selectors import whatsapp_session_list
from apps.conversations.models import Conversation
from apps.conversations.selectors import (
    conversation_for_simulator,
    conversation_list,
    overview_counts,
    thread_messages,
)
from apps.conversations.services import inbound_message_record
from apps.conversations.services.attachments import simulator_voice_note_store
from apps.knowledge.models import Document
from apps.knowledge.selectors import document_list
from apps.speech.services import transcription_schedule
from eva.media import MediaStorageUnavailable

logger = logging.getLogger(__name__)


def _user(request: HttpRequest) -> User:
    return request.user  # type: ignore[return-value]


def _require_manager(request: HttpRequest) -> None:
    if not _user(request).can_manage:
        raise PermissionDenied(_("Only owners and admins manage agents."))


def _agent_or_404(request: HttpRequest, agent_id: int) -> Agent:
    agent = agent_get_for_user(user=_user(request), agent_id=agent_id)
    if agent is None:
        raise Http404
    return agent


def _save(request: HttpRequest, form: AgentForm, agent: Agent | None) -> Agent | None:
    try:
        if agent is None:
            return agent_create(**form.agent_fields())
        return agent_update(agent=agent, **form.agent_fields())
    except ValidationError as exc:
        if hasattr(exc, "error_dict"):
            for field, errors in exc.message_dict.items():
                form.add_error(field if field in form.fields else None, errors)
        else:
            form.add_error(None, exc.messages)
        return None


@login_required
def agent_list_view(request: HttpRequest) -> HttpResponse:
    return render(request, "agents/list.html", {"agents": agent_list()})


@login_required
def overview_view(request: HttpRequest) -> HttpResponse:
    """The dashboard home's cards (loaded by HTMX): the steps to a working WhatsApp agent, and
    sales (agents, conversations, leads)."""
    active = agent_list().filter(is_active=True)
    agent = active.order_by("-is_default", "id").first()
    steps = [
        # (done, title, where to do it)
        (
            agent is not None,
            _("Describe your agent"),
            reverse("agents:edit", args=[agent.pk]) if agent else reverse("agents:create"),
        ),
        (
            document_list().filter(status=Document.Status.READY).exists(),
            _("Upload your catalogue, price lists and FAQs"),
            reverse("knowledge:list"),
        ),
        (
            conversation_list(channel=Conversation.Channel.SIMULATOR).exists(),
            _("Try the agent in the simulator"),
            reverse("agents:simulator", args=[agent.pk]) if agent else reverse("agents:create"),
        ),
        (
            whatsapp_session_list().filter(status=WhatsAppSession.Status.READY).exists(),
            _("Connect a WhatsApp number"),
            reverse("channels:list"),
        ),
    ]
    context = overview_counts() | {
        "agents": active.count(),
        "steps": steps,
        "steps_done": all(done for done, _title, _url in steps),
    }
    return render(request, "agents/_overview.html", context)


@login_required
def agent_create_view(request: HttpRequest) -> HttpResponse:
    _require_manager(request)
    form = AgentForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        agent = _save(request, form, None)
        if agent is not None:
            messages.success(request, _("Agent created. Try it in the simulator."))
            return redirect("agents:simulator", agent_id=agent.pk)
    return render(request, "agents/form.html", {"form": form, "agent": None})


@login_required
def agent_edit_view(request: HttpRequest, agent_id: int) -> HttpResponse:
    _require_manager(request)
    agent = _agent_or_404(request, agent_id)
    form = AgentForm(request.POST or None, instance=agent)
    if request.method == "POST" and form.is_valid() and _save(request, form, agent) is not None:
        messages.success(request, _("Agent saved."))
        return redirect("agents:list")
    return render(request, "agents/form.html", {"form": form, "agent": agent})


@login_required
@require_POST
def agent_delete_view(request: HttpRequest, agent_id: int) -> HttpResponse:
    _require_manager(request)
    agent_delete(agent=_agent_or_404(request, agent_id))
    messages.info(request, _("Agent deleted."))
    return redirect("agents:list")


# --- the chat simulator ------------------------------------------------------------------------

_SIM_KEY = "agents:simulator:{agent_id}"


def _simulator_contact(request: HttpRequest, agent: Agent, *, fresh: bool = False) -> str:
    """The simulated customer's id for this browser session and agent ("New chat" makes a new
    one): every simulator chat is a real contact and conversation, channel "simulator"."""
    key = _SIM_KEY.format(agent_id=agent.pk)
    if fresh or key not in request.session:
        request.session[key] = f"sim:{agent.pk}:{secrets.token_hex(8)}"
    return str(request.session[key])


def _simulator_context(request: HttpRequest, agent: Agent, *, error: str = "") -> dict[str, object]:
    wa_id = _simulator_contact(request, agent)
    conversation = conversation_for_simulator(contact_wa_id=wa_id)
    thread = list(thread_messages(conversation=conversation)) if conversation else []
    last = thread[-1] if thread else None
    waiting = (
        conversation is not None
        and last is not None
        and last.direction == "in"
        and conversation.mode == "bot"
        and not conversation.contact.opted_out
    )
    # A voice note is transcribed before the agent reads it.
    transcribing = (
        waiting
        and last is not None
        and last.kind == "audio"
        and not last.transcript
        and last.status != "failed"
    )
    return {
        "agent": agent,
        "conversation": conversation,
        "thread": thread,
        "waiting": waiting,
        "transcribing": transcribing,
        "error": error,
    }


@login_required
def simulator_view(request: HttpRequest, agent_id: int) -> HttpResponse:
    agent = _agent_or_404(request, agent_id)
    context = _simulator_context(request, agent) | {"agents": agent_list()}
    return render(request, "agents/simulator.html", context)


@login_required
def simulator_thread_view(request: HttpRequest, agent_id: int) -> HttpResponse:
    agent = _agent_or_404(request, agent_id)
    return render(request, "agents/_simulator_thread.html", _simulator_context(request, agent))


@login_required
@require_POST
def simulator_send_view(request: HttpRequest, agent_id: int) -> HttpResponse:
    """The simulated customer writes: the message enters the same pipeline as a WhatsApp
    message (stored by inbound_message_record, answered by the agent worker)."""
    agent = _agent_or_404(request, agent_id)
    text = (request.POST.get("text") or "").strip()[:4096]
    audio = request.FILES.get("audio")
    media = None
    error = ""
    if audio is not None and text:
        error = _("A voice note is sent on its own: send the text as a message of its own.")
    elif audio is not None:
        # A voice note, as a customer sends one: stored, transcribed, then answered.
        try:
            media = simulator_voice_note_store(audio, name=audio.name or "voice-note")
        except ValidationError as exc:
            error = " ".join(exc.messages)
        except MediaStorageUnavailable as exc:
            logger.warning("simulator voice note not stored: %s", exc.__cause__ or exc)
            error = str(exc)
    if (text or media) and not error:
        record = inbound_message_record(
            channel="simulator",
            channel_ref="",
            contact_wa_id=_simulator_contact(request, agent),
            contact_phone=None,
            contact_name=_("Simulator ({email})").format(email=_user(request).email),
            external_id=f"sim-{uuid.uuid4()}",
            kind="audio" if media else "text",
            text="" if media else text,
            media=media,
            sent_at=timezone.now(),
            agent_id=agent.pk,
        )
        if record.created and media:
            transcription_schedule(message_id=record.message.pk)
        elif record.created:
            reply_schedule(conversation_id=record.conversation.pk, message_id=record.message.pk)
    if request.htmx:  # type: ignore[attr-defined]
        return render(
            request,
            "agents/_simulator_thread.html",
            _simulator_context(request, agent, error=error),
        )
    if error:
        messages.error(request, error)
    return redirect("agents:simulator", agent_id=agent.pk)


@login_required
@require_POST
def simulator_reset_view(request: HttpRequest, agent_id: int) -> HttpResponse:
    agent = _agent_or_404(request, agent_id)
    _simulator_contact(request, agent, fresh=True)
    return redirect("agents:simulator", agent_id=agent.pk)
