"""A local HTTP receiver (the business's own system, as a real server on a socket) and the
customers and endpoints the webhook tests make."""

from __future__ import annotations

import hashlib
import hmac
import threading
import time
import uuid
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from django.utils import timezone
from django_tenants.utils import tenant_context


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes


@dataclass
class Receiver:
    """Answers each POST with the next status in ``answers`` (200 once they run out)."""

    server: ThreadingHTTPServer
    answers: list[int] = field(default_factory=list)
    requests: list[Received] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def wait(self, count: int, timeout: float = 30) -> list[Received]:
        deadline = time.monotonic() + timeout
        while len(self.requests) < count:
            if time.monotonic() > deadline:
                raise AssertionError(f"{len(self.requests)} requests received, {count} expected")
            time.sleep(0.05)
        return self.requests[:count]


def receiver_start() -> Receiver:
    receiver: Receiver

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            receiver.requests.append(Received(self.path, dict(self.headers.items()), body))
            status = receiver.answers.pop(0) if receiver.answers else 200
            answer = b"stored" if status < 300 else b"receiver says no"
            self.send_response(status)
            self.send_header("Content-Length", str(len(answer)))
            self.end_headers()
            self.wfile.write(answer)

        def log_message(self, *args: Any) -> None:
            pass

    receiver = Receiver(server=ThreadingHTTPServer(("127.0.0.1", 0), Handler))
    threading.Thread(target=receiver.server.serve_forever, daemon=True).start()
    return receiver


def signature_valid(secret: str, request: Received) -> bool:
    timestamp = request.headers["X-EVA-Timestamp"]
    expected = hmac.new(
        secret.encode(), timestamp.encode() + b"." + request.body, hashlib.sha256
    ).hexdigest()
    return hmac.compare_digest(request.headers["X-EVA-Signature"], f"sha256={expected}")


def customer_writes(tenant: Any, *, simulated: bool = False, text: str = "Hola") -> Any:
    """A new customer's first message; returns its conversation."""
    from apps.conversations.services import inbound_message_record

    with tenant_context(tenant):
        record = inbound_message_record(
            channel="simulator" if simulated else "whatsapp",
            channel_ref="main",
            contact_wa_id=(
                f"sim:{uuid.uuid4()}" if simulated else f"3460{uuid.uuid4().int % 10**7:07d}@c.us"
            ),
            contact_phone=None if simulated else f"+3460{uuid.uuid4().int % 10**7:07d}",
            contact_name="Lucía",
            external_id=f"wamid.{uuid.uuid4().hex}",
            kind="text",
            text=text,
            media=None,
            sent_at=timezone.now(),
        )
        return record.conversation


def forget_customers(tenant: Any, conversation_ids: list[int]) -> None:
    """Delete what ``customer_writes`` made (committed data other tests must not count)."""
    from apps.conversations.models import Contact, Conversation, Message

    with tenant_context(tenant):
        contacts = list(
            Conversation.objects.filter(pk__in=conversation_ids).values_list(
                "contact_id", flat=True
            )
        )
        Message.objects.filter(conversation__contact_id__in=contacts).delete()
        Conversation.objects.filter(contact_id__in=contacts).delete()
        Contact.objects.filter(pk__in=contacts).delete()
