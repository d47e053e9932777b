"""The reply engine: one turn of a sales agent in one conversation.

history window + hybrid retrieval + agent config → guarded prompt → routed model call with
structured output (reply, lead fields, handoff flag) → stored reply. The caller (the task
``workers.agent.reply_to_conversation``) hands the stored reply to the channel for delivery;
this module knows nothing of WhatsApp.
"""

from __future__ import annotations

import logging
import re
import time
import unicodedata
from contextlib import nullcontext
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone

from apps.agents import prompt
from apps.agents.models import Agent
from apps.agents.selectors import agent_for_conversation
from apps.ai.chat import ChatMessage, ChatRequest, ContextPassage, chat_complete
from apps.ai.providers.local_responder import detect_language
from apps.conversations.models import Conversation, Message
from apps.conversations.services import (
    BotReply,
    bot_reply_record,
    contact_language_set,
    contact_lead_fields_fill,
    conversation_agent_assign,
    conversation_handoff,
    conversation_relevance_note,
    lead_field_open,
)
from apps.knowledge.retrieval import RetrievedChunk, search_chunks

logger = logging.getLogger(__name__)

RETRIEVAL_LIMIT = 6


@dataclass
class ReplyOutcome:
    """What one run of the engine did. ``message_id`` is the stored reply to deliver, if any."""

    status: str  # replied | handoff | skipped
    reason: str = ""
    message_id: int | None = None
    lead_fields: list[str] = field(default_factory=list)
    timings_ms: dict[str, int] = field(default_factory=dict)


# --- rules that act before the model -----------------------------------------------------------


def _fold(text: str) -> str:
    decomposed = unicodedata.normalize("NFKD", text.casefold())
    return "".join(c for c in decomposed if not unicodedata.combining(c))


_PERSON_REQUEST = re.compile(
    r"\b("
    r"(hablar|comunicarme|conversar|hablar directamente)\s+con\s+(una?\s+|el\s+|la\s+|alguien\s*)?"
    r"(persona|humano|humana|asesor|asesora|agente|vendedor|vendedora|operador|operadora|"
    r"encargado|encargada|alguien)"
    r"|(quiero|necesito|prefiero)\s+(una?\s+)?(persona|humano|asesor|asesora|agente real)"
    r"|(pasame|pasenme|comunicame|comuniqueme)\s+con"
    r"|(talk|speak|chat)\s+(to|with)\s+(a\s+|an\s+|some\s*)?"
    r"(human|person|agent|representative|someone|real person|salesperson)"
    r"|(falar|conversar)\s+com\s+(uma?\s+|alguem\s*)?(pessoa|humano|atendente|vendedor|alguem)"
    r")\b"
)


_GREETING_ONLY = re.compile(
    r"^\W*(hola|holi|buenas|buenos dias|buenas tardes|buenas noches|hello|hi|hey|good morning|"
    r"good afternoon|good evening|ola|oi|bom dia|boa tarde|boa noite)\W*$"
)


def is_greeting(text: str) -> bool:
    return bool(_GREETING_ONLY.match(_fold(text).strip()))


def asks_for_person(text: str) -> bool:
    return bool(_PERSON_REQUEST.search(_fold(text)))


def _keyword_hit(agent: Agent, text: str) -> str | None:
    said = " " + " ".join(re.findall(r"\w+", _fold(text))) + " "
    for keyword in agent.handoff_keywords:
        wanted = " ".join(re.findall(r"\w+", _fold(keyword)))
        if wanted and f" {wanted} " in said:
            return keyword
    return None


def outside_business_hours(agent: Agent, now: datetime) -> bool:
    if agent.hours_start is None or agent.hours_end is None:
        return False
    local = now.astimezone(ZoneInfo(agent.timezone))
    if agent.business_days and local.isoweekday() not in agent.business_days:
        return True
    start, end, at = agent.hours_start, agent.hours_end, local.time()
    inside = start <= at < end if start <= end else (at >= start or at < end)
    return not inside


_NOTICES = {
    "person": {
        "es": "Claro, te comunico con una persona de nuestro equipo. Te escribirá en breve.",
        "en": "Of course, I'm connecting you with a person from our team. They'll write shortly.",
        "pt": "Claro, vou chamar uma pessoa da nossa equipe. Ela vai te escrever em breve.",
    },
    "hours": {
        "es": "Gracias por escribirnos. Nuestro equipo te responderá en horario de atención.",
        "en": "Thanks for writing. Our team will answer you during business hours.",
        "pt": "Obrigado pela mensagem. Nossa equipe vai responder no horário de atendimento.",
    },
}


# --- lead fields: only what the customer wrote ---------------------------------------------------

_EMAIL = re.compile(r"[\w.+-]+@[\w-]+(\.[\w-]+)+")
_NAME_INTRO = re.compile(
    r"\b(?:me llamo|mi nombre es|my name is|me chamo|meu nome e|meu nome é)\s+"
    r"([A-ZÁÉÍÓÚÑ][\wáéíóúñü'-]+(?:\s+[A-ZÁÉÍÓÚÑ][\wáéíóúñü'-]+){0,2})",
    re.IGNORECASE,
)
_STOP_NAME_WORDS = {"y", "and", "e", "mi", "my", "meu"}


def rule_lead_fields(text: str) -> dict[str, str]:
    """Lead values stated in unmistakable forms ("me llamo Ana", an email address), so leads
    are captured even by the offline responder, which extracts nothing."""
    found: dict[str, str] = {}
    email = _EMAIL.search(text)
    if email:
        found["email"] = email.group(0).rstrip(".").lower()
    name = _NAME_INTRO.search(text)
    if name:
        words = []
        for word in name.group(1).split():
            if word.casefold() in _STOP_NAME_WORDS or not word[0].isupper():
                break
            words.append(word.strip(",.;"))
        if words:
            found["name"] = " ".join(words)
    return found


def _content_words(text: str) -> list[str]:
    return [w for w in re.findall(r"\w+", _fold(text)) if len(w) > 2 or w.isdigit()]


def said_by_customer(value: str, customer_text: str) -> bool:
    """Whether ``value`` is something the customer wrote: an email verbatim, otherwise every
    content word (and every number) of the value appears in the customer's messages."""
    value = value.strip()
    if not value:
        return False
    folded = _fold(customer_text)
    if "@" in value:
        return value.casefold() in folded
    said = set(re.findall(r"\w+", folded))
    words = _content_words(value) or re.findall(r"\w+", _fold(value))
    return bool(words) and all(w in said for w in words)


def lead_values(payload_lead: Any, customer_text: str) -> dict[str, str]:
    values: dict[str, str] = {}
    if isinstance(payload_lead, dict):
        for key in prompt.LEAD_KEYS:
            value = payload_lead.get(key)
            if isinstance(value, str) and said_by_customer(value, customer_text):
                values[key] = value.strip()
    for key, value in rule_lead_fields(customer_text).items():
        values.setdefault(key, value)
    return values


# --- citations -----------------------------------------------------------------------------------


def _ref(chunk: RetrievedChunk) -> str:
    return f"chunk:{chunk.chunk_id}"


def citations_for(
    *, reply: str, chunks: list[RetrievedChunk], sources: Any
) -> list[dict[str, Any]]:
    """The chunks the reply relies on: those the model listed in ``sources``, and those whose
    sentences the reply repeats (the offline responder copies sentences verbatim)."""
    listed = {str(s) for s in sources} if isinstance(sources, list) else set()
    folded_reply = " ".join(_fold(reply).split())
    cited = []
    for chunk in chunks:
        used = _ref(chunk) in listed or str(chunk.chunk_id) in listed
        if not used:
            for sentence in re.split(r"(?<=[.!?])\s+|\n+", chunk.text):
                sentence = " ".join(_fold(sentence).split())
                if len(sentence) >= 20 and sentence in folded_reply:
                    used = True
                    break
        if used:
            cited.append(
                {
                    "chunk_id": chunk.chunk_id,
                    "document_id": chunk.document_id,
                    "title": chunk.document_title,
                    "score": round(float(chunk.score), 4),
                }
            )
    return cited


# --- the turn ----------------------------------------------------------------------------------


# What the engine reads of a message: a full row (media, citations, usage...) costs several
# times more to fetch and build, on every turn, for up to a dozen history messages.
_TEXT_FIELDS = ("id", "direction", "kind", "text", "transcript")


def _history(conversation: Conversation, before_id: int) -> list[ChatMessage]:
    """The last messages before this turn, oldest first, as user/assistant turns."""
    rows = list(
        conversation.messages.filter(id__lte=before_id)
        .exclude(kind=Message.Kind.SYSTEM)
        .exclude(status=Message.Status.FAILED)
        .only(*_TEXT_FIELDS)
        .order_by("-id")[: settings.EVA_AGENT_HISTORY_MESSAGES]
    )
    history = []
    for message in reversed(rows):
        text = message.body
        if not text:
            continue
        if message.direction == Message.Direction.IN:
            history.append(ChatMessage(role="user", text=text))
        else:
            history.append(ChatMessage(role="assistant", text=text))
    return history


def _business_name() -> str:
    tenant = getattr(connection, "tenant", None)
    return str(getattr(tenant, "name", "") or "the business")


def _skip(reason: str) -> ReplyOutcome:
    return ReplyOutcome(status="skipped", reason=reason)


def _store_notice(
    *,
    conversation: Conversation,
    pending: list[Message],
    text: str,
    reason: str,
    started: float,
) -> ReplyOutcome:
    """Say goodbye on the bot's behalf and hand the conversation to a person, atomically."""
    with transaction.atomic():
        message = bot_reply_record(
            conversation_id=conversation.pk,
            answered_through_id=pending[-1].pk,
            replied_to_ids=[m.pk for m in pending],
            reply=BotReply(
                text=text,
                provider="rules",
                model="handoff",
                latency_ms=int((time.monotonic() - started) * 1000),
                tokens_in=0,
                tokens_out=0,
                usage_id=None,
                citations=[],
            ),
            handoff_notice=True,
        )
        if message is None:
            return _skip("conversation changed while replying")
        conversation_handoff(conversation_id=conversation.pk, reason=reason)
    return ReplyOutcome(status="handoff", reason=reason, message_id=message.pk)


def _turn_language(agent: Agent, customer_text: str, known: str) -> str:
    """The language to answer this turn in: the agent's fixed language, else the language of
    what the customer just wrote (a few words are enough), else the one we knew for them."""
    if agent.language_policy == Agent.LanguagePolicy.FIXED:
        return agent.default_language
    if len(customer_text.split()) >= 3 or not known:
        return detect_language(customer_text, None)
    return known


def _store_greeting(
    *, conversation: Conversation, pending: list[Message], agent: Agent, started: float
) -> ReplyOutcome:
    message = bot_reply_record(
        conversation_id=conversation.pk,
        answered_through_id=pending[-1].pk,
        replied_to_ids=[m.pk for m in pending],
        reply=BotReply(
            text=prompt.trim_reply(agent.greeting, agent.max_reply_chars),
            provider="rules",
            model="greeting",
            latency_ms=int((time.monotonic() - started) * 1000),
            tokens_in=0,
            tokens_out=0,
            usage_id=None,
            citations=[],
        ),
    )
    if message is None:
        return _skip("conversation changed while replying")
    return ReplyOutcome(status="replied", reason="greeting", message_id=message.pk)


def _language_of(payload: dict[str, Any], fallback: str) -> str:
    """The customer's language as the model judged it, else this turn's detected one."""
    language = payload.get("language")
    if isinstance(language, str) and re.fullmatch(r"[a-zA-Z]{2}(-[a-zA-Z]{2})?", language.strip()):
        return language.strip().lower()[:2]
    return fallback


def _fill_leads(contact: Any, values: dict[str, str]) -> list[str]:
    # Skip the locked write when there is nothing new to fill (most turns).
    if not any(
        v and lead_field_open(contact, k) and getattr(contact, k, "") != v
        for k, v in values.items()
    ):
        return []
    filled = contact_lead_fields_fill(contact_id=contact.pk, values=values)
    for name in filled:
        setattr(contact, name, values.get(name, getattr(contact, name)))
    return filled


def conversation_reply(*, conversation_id: int, message_id: int) -> ReplyOutcome:
    """Answer the customer messages of ``conversation_id`` not yet answered, if ``message_id``
    is the newest of them (else a later task answers the whole burst).

    Before: the message is stored (and transcribed, for a voice note). After: at most one bot
    message was stored for those messages (duplicates and concurrent runs are refused by
    ``bot_reply_record`` under the conversation's row lock), and none at all when the
    conversation is not in bot mode or the contact opted out at the moment of storing.
    """
    started = time.monotonic()
    timings: dict[str, int] = {}
    conversation = Conversation.objects.select_related("contact").filter(pk=conversation_id).first()
    if conversation is None:
        return _skip("no such conversation")
    contact = conversation.contact
    if conversation.mode != Conversation.Mode.BOT:
        return _skip(f"conversation is in {conversation.mode} mode")
    if contact.opted_out:
        return _skip("contact opted out")
    pending = list(
        conversation.messages.filter(
            direction=Message.Direction.IN, id__gt=conversation.answered_through_id
        )
        .only(*_TEXT_FIELDS)
        .order_by("id")
    )
    if not pending:
        return _skip("already answered")
    if pending[-1].pk > message_id:
        return _skip("a newer message will be answered with this one")
    if not pending[-1].body and pending[-1].kind == Message.Kind.AUDIO:
        return _skip("waiting for the voice note's transcript")
    texts = [m.body for m in pending if m.body]
    if not texts:
        return _skip("nothing to answer")
    agent = agent_for_conversation(agent_id=conversation.agent_id)
    if agent is None:
        return _skip("the tenant has no active agent")
    if conversation.agent_id != agent.pk:
        conversation_agent_assign(conversation_id=conversation.pk, agent_id=agent.pk)
    customer_text = "\n".join(texts)
    language = _turn_language(agent, customer_text, contact.language)

    # Lead values the customer stated count even if no reply follows.
    stated = rule_lead_fields(customer_text)
    lead_filled = _fill_leads(contact, stated)

    rule_language = language
    if agent.handoff_on_request and asks_for_person(customer_text):
        text = _NOTICES["person"].get(rule_language[:2], _NOTICES["person"]["es"])
        return _store_notice(
            conversation=conversation,
            pending=pending,
            text=text,
            reason="customer asked for a person",
            started=started,
        )
    keyword = _keyword_hit(agent, customer_text)
    if keyword:
        text = _NOTICES["person"].get(rule_language[:2], _NOTICES["person"]["es"])
        return _store_notice(
            conversation=conversation,
            pending=pending,
            text=text,
            reason=f"keyword: {keyword}",
            started=started,
        )
    if agent.handoff_outside_hours and outside_business_hours(agent, timezone.now()):
        text = _NOTICES["hours"].get(rule_language[:2], _NOTICES["hours"]["es"])
        return _store_notice(
            conversation=conversation,
            pending=pending,
            text=text,
            reason="outside business hours",
            started=started,
        )

    # A first "hola" gets the agent's own greeting: no retrieval, no model. (Whether the bot
    # spoke before is asked last: most turns are not greetings and skip that query.)
    if (
        agent.greeting
        and all(is_greeting(t) for t in texts)
        and not conversation.messages.filter(sender=Message.Sender.BOT).exists()
    ):
        return _store_greeting(
            conversation=conversation, pending=pending, agent=agent, started=started
        )

    # Retrieval: the whole burst is the query; a very short follow-up ("¿y en azul?") borrows
    # the previous customer message so it still finds the right product.
    query = customer_text
    if len(query.split()) < 4:
        previous = (
            conversation.messages.filter(direction=Message.Direction.IN, id__lt=pending[0].pk)
            .only(*_TEXT_FIELDS)
            .order_by("-id")
            .first()
        )
        if previous is not None and previous.body:
            query = f"{previous.body}\n{query}"
    mark = time.monotonic()
    document_ids = (
        list(agent.document_ids) if agent.knowledge_scope == Agent.KnowledgeScope.SELECTED else None
    )
    chunks = search_chunks(query=query, document_ids=document_ids, limit=RETRIEVAL_LIMIT)
    timings["retrieval"] = int((time.monotonic() - mark) * 1000)

    system = prompt.system_prompt(agent=agent, business_name=_business_name(), language=language)
    history = _history(conversation, before_id=pending[0].pk - 1)
    request = ChatRequest(
        system=system,
        messages=[*history, ChatMessage(role="user", text=customer_text)],
        context=[ContextPassage(ref=_ref(c), text=c.text, source=c.document_title) for c in chunks],
        response_schema=prompt.RESPONSE_SCHEMA,
        purpose="reply",
        agent_id=agent.pk,
        route=agent.model_route or None,
        language_hint=language,
        max_output_tokens=max(256, agent.max_reply_chars // 2 + 200),
    )
    mark = time.monotonic()
    result = chat_complete(request)
    timings["model"] = int((time.monotonic() - mark) * 1000)
    payload = result.payload if isinstance(result.payload, dict) else {}
    reply_language = _language_of(payload, language)

    reply = payload.get("reply") if isinstance(payload.get("reply"), str) else None
    reply = (reply or result.text or "").strip()
    if not reply or prompt.leaks_prompt(reply=reply, agent=agent, system=system):
        if reply:
            logger.warning("reply withheld: it repeated the agent's prompt")
        reply = prompt.refusal(reply_language)
    reply = prompt.trim_reply(reply, agent.max_reply_chars)

    citations = citations_for(reply=reply, chunks=chunks, sources=payload.get("sources"))
    best = max((c.score for c in chunks), default=0.0)
    low = not chunks or best < agent.min_relevance
    low_turns = 0
    if low or conversation.low_relevance_turns:
        low_turns = conversation_relevance_note(conversation_id=conversation.pk, low=low)
    handoff_reason = ""
    # The offline responder's flag means "I offered a person" (it says so whenever it does not
    # know); explicit requests were handled by the rules above and repeated "I don't know"s by
    # the relevance rule below, so only a real model's judgement counts here.
    if payload.get("handoff") is True and result.provider != "local":
        handoff_reason = str(payload.get("escalation_reason") or "the agent asked for a person")
    elif agent.handoff_low_relevance_turns and low_turns >= agent.handoff_low_relevance_turns:
        handoff_reason = f"no relevant knowledge for {low_turns} turns"

    filled = _fill_leads(contact, lead_values(payload.get("lead"), customer_text))
    if reply_language and reply_language != contact.language:
        contact_language_set(contact_id=contact.pk, language=reply_language)

    reply_row = BotReply(
        text=reply,
        provider=result.provider,
        model=result.model,
        latency_ms=result.latency_ms,
        tokens_in=result.tokens_in,
        tokens_out=result.tokens_out,
        usage_id=result.usage_id,
        citations=citations,
    )
    # Reply and handoff commit together; a plain reply needs no outer transaction.
    with transaction.atomic() if handoff_reason else nullcontext():
        message = bot_reply_record(
            conversation_id=conversation.pk,
            answered_through_id=pending[-1].pk,
            replied_to_ids=[m.pk for m in pending],
            reply=reply_row,
            handoff_notice=bool(handoff_reason),
        )
        if message is not None and handoff_reason:
            conversation_handoff(conversation_id=conversation.pk, reason=handoff_reason[:200])
    timings["total"] = int((time.monotonic() - started) * 1000)
    if message is None:
        return ReplyOutcome(
            status="skipped",
            reason="conversation changed while replying",
            lead_fields=lead_filled + filled,
            timings_ms=timings,
        )
    return ReplyOutcome(
        status="handoff" if handoff_reason else "replied",
        reason=handoff_reason,
        message_id=message.pk,
        lead_fields=lead_filled + filled,
        timings_ms=timings,
    )
