"""Fixtures of the reply-engine tests: committed data a real Celery worker can see, documents
ingested by the real embedding worker, and a local HTTP server speaking OpenAI's chat
completions wire format (the real ``openai`` SDK talks to it through the tenant's own key)."""

from __future__ import annotations

import json
import re
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from django.core.files.base import ContentFile
from django.test import Client
from django.utils import timezone
from django_tenants.utils import schema_context, tenant_context

WAIT_S = 60.0


def wait_for(predicate: Callable[[], Any], *, timeout: float = WAIT_S, what: str = "") -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what or predicate}")
        time.sleep(0.1)


def logged_in(persona) -> Client:
    client = Client(HTTP_HOST=persona.host)
    response = client.post("/login/", {"username": persona.email, "password": persona.password})
    assert response.status_code == 302
    return client


def forget_media_root() -> None:
    """django-tenants' storage caches MEDIA_ROOT and never forgets it when a test changes the
    setting; drop the cache so files land where the worker process will look."""
    from django.core.files.storage import storages

    storages["default"].__dict__.pop("relative_media_root", None)


@pytest.fixture
def committed(django_db_setup, django_db_blocker, world, settings) -> Iterator[None]:
    """Database access outside a test transaction (a worker process must see the rows); what the
    test created in either tenant is deleted afterwards."""
    settings.EVA_AGENT_BURST_SECONDS = 0.3
    forget_media_root()
    with django_db_blocker.unblock():
        yield
        from apps.agents.models import Agent
        from apps.ai.models import ProviderKey
        from apps.channels.models import WhatsAppSession
        from apps.conversations.models import Contact
        from apps.knowledge.models import Document
        from apps.knowledge.services import document_delete
        from apps.tenants.models import WhatsAppSessionIndex

        for schema in ("alpha", "beta"):
            with schema_context(schema):
                for document in Document.objects.all():
                    document_delete(document=document)
                Contact.objects.all().delete()
                Agent.objects.all().delete()
                ProviderKey.objects.all().delete()
                for session in WhatsAppSession.objects.all():
                    WhatsAppSessionIndex.objects.filter(session_id=session.session_id).delete()
                    session.delete()


def document_ready(tenant, client: Client, name: str, text: str) -> int:
    """Upload through the knowledge API; wait until the embedding worker made its chunks."""
    from apps.knowledge.models import Document

    response = client.post(
        "/api/v1/documents/", {"file": ContentFile(text.encode(), name=name), "title": name}
    )
    assert response.status_code in (200, 201, 202), response.content
    document_id = int(response.json()["id"])

    def ready() -> bool:
        with tenant_context(tenant):
            document = Document.objects.get(pk=document_id)
        assert document.status != "failed", f"{name} failed to ingest: {document.error}"
        return document.status == "ready"

    wait_for(ready, what=f"{name} to be ingested")
    return document_id


def customer_writes(
    tenant,
    text: str,
    *,
    wa_id: str,
    channel: str = "whatsapp",
    channel_ref: str = "main",
    external_id: str | None = None,
    schedule: bool = True,
):
    """What the WhatsApp consumer does for a text message: store it, then ask for a reply."""
    from apps.agents.services import reply_schedule
    from apps.conversations.services import inbound_message_record

    with tenant_context(tenant):
        record = inbound_message_record(
            channel=channel,
            channel_ref=channel_ref,
            contact_wa_id=wa_id,
            contact_phone=None,
            contact_name=None,
            external_id=external_id or f"wamid.{uuid.uuid4().hex}",
            kind="text",
            text=text,
            media=None,
            sent_at=timezone.now(),
        )
        if schedule:
            reply_schedule(conversation_id=record.conversation.pk, message_id=record.message.pk)
    return record


def bot_messages(tenant, conversation_id: int) -> list:
    from apps.conversations.models import Message

    with tenant_context(tenant):
        return list(
            Message.objects.filter(conversation_id=conversation_id, sender="bot").order_by("id")
        )


# --- a local OpenAI-compatible server ----------------------------------------------------------

_PASSAGE = re.compile(
    r"^\[(chunk:\d+)\] \((.*?)\) (.*?)(?=\n\[chunk:\d+\] |\n\nReply in the customer|\Z)",
    re.M | re.S,
)


def _words(text: str) -> set[str]:
    return {w for w in re.findall(r"\w+", text.lower()) if len(w) > 3}


def grounded_answer(body: dict[str, Any]) -> dict[str, Any]:
    """A well-behaved model: answers from the best-matching context passage, cites it, and
    answers in the customer's language."""
    system = body["messages"][0]["content"]
    question = [m["content"] for m in body["messages"] if m["role"] == "user"][-1]
    passages = _PASSAGE.findall(system)
    english = bool(re.search(r"\b(how|much|what|the|does)\b", question, re.IGNORECASE))
    lead = {key: "" for key in ("name", "email", "company", "interest", "budget")}
    if not passages:
        reply = "I don't have that information." if english else "No tengo esa información."
        return {
            "reply": reply,
            "language": "en" if english else "es",
            "handoff": False,
            "escalation_reason": "",
            "lead": lead,
            "sources": [],
        }
    sentences = [
        (ref, sentence.strip())
        for ref, _title, text in passages
        for sentence in re.split(r"(?<=[.!?])\s+", text)
        if sentence.strip()
    ]
    ref, sentence = max(sentences, key=lambda p: len(_words(p[1]) & _words(question)))
    intro = "From our catalogue: " if english else "Según nuestro catálogo: "
    return {
        "reply": intro + sentence,
        "language": "en" if english else "es",
        "handoff": False,
        "escalation_reason": "",
        "lead": lead,
        "sources": [ref],
    }


@dataclass
class OpenAIStub:
    port: int = 0
    seen: list[dict[str, Any]] = field(default_factory=list)
    answered: int = 0
    delay_s: float = 0.0
    responder: Callable[[dict[str, Any]], dict[str, Any]] = grounded_answer
    lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def requests_mentioning(self, text: str) -> list[dict[str, Any]]:
        return [b for b in self.seen if text in json.dumps(b, ensure_ascii=False)]


@pytest.fixture
def openai_stub() -> Iterator[OpenAIStub]:
    stub = OpenAIStub()

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: Any) -> None:
            pass

        def do_POST(self) -> None:
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            with stub.lock:
                stub.seen.append(body)
            time.sleep(stub.delay_s)
            content = json.dumps(stub.responder(body), ensure_ascii=False)
            answer = {
                "id": f"chatcmpl-{uuid.uuid4().hex[:8]}",
                "object": "chat.completion",
                "created": int(time.time()),
                "model": body["model"],
                "choices": [
                    {
                        "index": 0,
                        "message": {"role": "assistant", "content": content},
                        "finish_reason": "stop",
                    }
                ],
                "usage": {"prompt_tokens": 321, "completion_tokens": 45, "total_tokens": 366},
            }
            raw = json.dumps(answer).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(raw)))
            self.end_headers()
            self.wfile.write(raw)
            with stub.lock:
                stub.answered += 1

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    stub.port = server.server_address[1]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield stub
    server.shutdown()
    server.server_close()


def agent_create_for(tenant, **fields: Any):
    from apps.agents.services import agent_create

    defaults: dict[str, Any] = {
        "name": "Sofía",
        "persona": "Sofía, la asistente de ventas de la tienda",
        "instructions": "Secret house rule SAPPHIRE-17: never give discounts above 5 percent.",
        "sales_goals": ["qualify", "share_prices", "collect_email"],
        "handoff_low_relevance_turns": 0,
    }
    with tenant_context(tenant):
        return agent_create(**(defaults | fields))


def use_openai_stub(tenant, stub: OpenAIStub) -> None:
    """The tenant's own OpenAI key, pointed at the stub (so only this tenant uses it)."""
    from apps.ai.services import provider_key_set

    with tenant_context(tenant):
        provider_key_set(provider="openai", api_key="sk-test-stub", base_url=stub.base_url)
