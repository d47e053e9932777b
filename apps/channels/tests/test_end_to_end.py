"""Cross-language end to end, every part real except WhatsApp itself: the gateway-node process
(bin/gateway.js with its Redis-driven fake WhatsApp, GATEWAY_FAKE_WHATSAPP=1), Valkey, the
`manage.py consume_inbound` process, a Celery worker and PostgreSQL.

The data these processes share must be committed: the test's own connection sits in the
per-test transaction, so every write the other processes must see runs through ``committed()``
(another thread, hence another connection, in autocommit), and the fixture deletes it at the end.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from django.conf import settings
from django.db import connections
from django.test import Client
from django_tenants.utils import tenant_context

from apps.accounts.models import User
from apps.channels import contract, services
from apps.channels.models import WhatsAppSession
from apps.channels.tests.conftest import database_url
from apps.conversations.models import Contact, Message
from apps.conversations.services import staff_message_send
from apps.ops.models import DeadLetter
from apps.tenants.models import WhatsAppSessionIndex

ROOT = Path(settings.BASE_DIR)
GATEWAY = ROOT / "gateway-node"
PREFIX = settings.EVA_STREAM_PREFIX
FAKE_IN = f"{PREFIX}:fakewa:in"
FAKE_SENT = f"{PREFIX}:fakewa:sent"


def wait_for(check: Callable[[], Any], *, what: str, timeout: float = 30.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


class Process:
    """A child process whose output is kept (and shown when a test fails)."""

    def __init__(self, name: str, args: list[str], env: dict[str, str], cwd: Path) -> None:
        self.name = name
        self.lines: list[str] = []
        self.proc = subprocess.Popen(
            args, env=env, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
        )
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.append(line.rstrip("\n"))

    def logged(self, text: str) -> bool:
        return any(text in line for line in self.lines)

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 20) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            return self.proc.wait()

    def tail(self) -> str:
        return f"--- {self.name} ---\n" + "\n".join(self.lines[-60:])


def _ensure_gateway_installed() -> None:
    # `make test` runs pytest before gateway-node's own step; install its locked dependencies
    # (no browser download: the fake WhatsApp needs none).
    if not (GATEWAY / "node_modules" / "ioredis").exists():
        subprocess.run(
            ["npm", "ci", "--no-audit", "--no-fund", "--loglevel=error"],
            cwd=GATEWAY,
            env=os.environ | {"PUPPETEER_SKIP_DOWNLOAD": "1"},
            check=True,
            timeout=600,
        )


pytestmark = pytest.mark.django_db


def committed(work: Callable[[], Any]) -> Any:
    """Run ``work`` on its own connection (a thread), committed when it returns."""
    box: dict[str, Any] = {}

    def run() -> None:
        try:
            box["value"] = work()
        except BaseException as exc:
            box["error"] = exc
        finally:
            connections.close_all()

    thread = threading.Thread(target=run)
    thread.start()
    thread.join()
    if "error" in box:
        raise box["error"]
    return box.get("value")


def in_alpha(world, work: Callable[[], Any]) -> Any:
    def scoped() -> Any:
        with tenant_context(world.tenant_a):
            return work()

    return committed(scoped)


@pytest.fixture
def e2e(world, streams, celery_worker, tmp_path) -> Iterator[dict[str, Any]]:
    """The gateway and consumer processes, and the clean-up of everything the test made."""
    _ensure_gateway_installed()
    gateway_id = f"e2e-{os.getpid()}"
    base_env = {k: v for k, v in os.environ.items() if not k.startswith("EVA_INBOUND_")}
    made: dict[str, Any] = {"sessions": [], "wa_ids": [], "processes": [], "streams": streams}

    def gateway(**extra: str) -> Process:
        env = {
            "PATH": os.environ["PATH"],
            "REDIS_URL": str(settings.REDIS_URL),
            "REDIS_KEY_PREFIX": PREFIX,
            "GATEWAY_ID": gateway_id,
            "GATEWAY_HEALTH_HOST": "127.0.0.1",
            "GATEWAY_HEALTH_PORT": "0",
            "MEDIA_ROOT": str(tmp_path / "media"),
            "WA_SESSION_DIR": str(tmp_path / "wa"),
            "CONTRACTS_DIR": str(ROOT / "contracts" / "streams"),
            "GATEWAY_FAKE_WHATSAPP": "1",
            "FAKE_WA_PHONE": "5215500000042",
            "OUTBOUND_BLOCK_MS": "100",
            "SEND_MIN_INTERVAL_MS": "0",
            "SEND_JITTER_MS": "0",
            "SEND_PER_CHAT_INTERVAL_MS": "0",
            "TYPING_BEFORE_SEND": "false",
            **extra,
        }
        process = Process("gateway", ["node", "bin/gateway.js"], env, GATEWAY)
        made["processes"].append(process)
        wait_for(lambda: process.logged("gateway started"), what="the gateway to start")
        return process

    def consumer(name: str) -> Process:
        env = base_env | {
            "DATABASE_URL": database_url(),
            "REDIS_URL": str(settings.REDIS_URL),
            "EVA_MEDIA_ROOT": str(tmp_path / "media"),
            "LOG_FORMAT": "console",
            "LOG_LEVEL": "info",
        }
        args = [sys.executable, "manage.py", "consume_inbound", "--consumer", name]
        args += ["--claim-idle-ms", "1500", "--block-ms", "200"]
        process = Process(f"consumer {name}", args, env, ROOT)
        made["processes"].append(process)
        wait_for(lambda: process.logged("consuming"), what=f"consumer {name} to start")
        return process

    made["gateway"], made["consumer"] = gateway, consumer
    try:
        yield made
    except BaseException:
        raise
    finally:
        for process in made["processes"]:
            process.stop(signal.SIGKILL if process.proc.poll() is None else signal.SIGTERM, 5)
        for process in made["processes"]:
            print(process.tail())

        def clean() -> None:
            with tenant_context(world.tenant_a):
                Contact.objects.filter(wa_id__in=made["wa_ids"]).delete()
                WhatsAppSession.objects.filter(session_id__in=made["sessions"]).delete()
            WhatsAppSessionIndex.objects.filter(session_id__in=made["sessions"]).delete()
            DeadLetter.objects.filter(name__startswith="consume_inbound").delete()

        committed(clean)
        keys = [FAKE_IN, FAKE_SENT, f"{PREFIX}:gateway:{gateway_id}:sessions"]
        keys += list(streams.scan_iter(f"{PREFIX}:gateway:*"))
        streams.delete(*keys)


def drive(client, **action: Any) -> None:
    client.xadd(FAKE_IN, {"event": json.dumps(action)})


def inbound_drained(client) -> bool:
    """Every inbound entry was read by the group and none is pending."""
    groups = client.xinfo_groups(contract.inbound_stream())
    group = next(g for g in groups if g["name"] == contract.INBOUND_GROUP)
    return group["lag"] == 0 and group["pending"] == 0


def connected_session(world, e2e) -> WhatsAppSession:
    """A number connected the way an owner does it: start, QR shown in the dashboard, scan."""
    streams = e2e["streams"]
    session = in_alpha(world, lambda: services.whatsapp_session_create(label="E2E"))
    e2e["sessions"].append(session.session_id)
    # Autocommit: the start command is published at once.
    in_alpha(world, lambda: services.whatsapp_session_start(session=session))
    sid = session.session_id

    def status() -> WhatsAppSession:
        return in_alpha(world, lambda: WhatsAppSession.objects.get(session_id=sid))

    # The gateway's "starting" travels back through the consumer before any QR.
    wait_for(lambda: status().status == "starting", what="the session starting", timeout=20)
    drive(streams, session_id=sid, action="qr", qr="2@e2e-pairing-code,abc")
    wait_for(lambda: status().qr == "2@e2e-pairing-code,abc", what="the QR in the database")
    owner = Client(HTTP_HOST=world.owner_a.host)
    owner.post("/login/", {"username": world.owner_a.email, "password": world.owner_a.password})
    panel = owner.get(f"/whatsapp/{session.pk}/status/", HTTP_HX_REQUEST="true")
    assert b"<svg" in panel.content  # the dashboard shows the gateway's QR
    drive(streams, session_id=sid, action="scan")
    session = wait_for(
        lambda: (s := status()).status == "ready" and s, what="the session ready", timeout=20
    )
    assert session.phone == "5215500000042" and session.qr == ""
    return session


def test_customer_text_in_staff_reply_out_delivered_ack_back(world, e2e):
    streams = e2e["streams"]
    e2e["consumer"]("e2e-1")
    e2e["gateway"](FAKE_WA_REQUIRE_QR="1")
    session = connected_session(world, e2e)
    sid = session.session_id
    customer = f"52155{uuid.uuid4().int % 10**8:08d}@c.us"
    e2e["wa_ids"].append(customer)

    # The same WhatsApp message published twice, a malformed entry, an unknown session.
    for _ in range(2):
        drive(
            streams,
            session_id=sid,
            action="receive",
            id="E2EDUP1",
            **{"from": customer},
            body="Hola, ¿cuánto cuesta el plan Pro?",
            notify_name="Ana",
        )
    malformed_id = streams.xadd(contract.inbound_stream(), {"event": "{broken"})
    ghost = json.loads((ROOT / "contracts/streams/examples/inbound/message.json").read_text())
    ghost.update(session_id="ghost-session", tenant_schema="alpha", event_id=str(uuid.uuid4()))
    ghost_id = streams.xadd(contract.inbound_stream(), {"event": json.dumps(ghost)})

    def stored() -> list[Message]:
        return in_alpha(
            world,
            lambda: list(
                Message.objects.select_related("conversation").filter(
                    conversation__contact__wa_id=customer, direction="in"
                )
            ),
        )

    wait_for(lambda: len(stored()) >= 1, what="the customer's message stored")
    wait_for(lambda: inbound_drained(streams), what="the inbound stream drained")
    messages = stored()
    assert len(messages) == 1  # the duplicate wa_id was stored once
    assert messages[0].text == "Hola, ¿cuánto cuesta el plan Pro?"
    assert messages[0].conversation.channel_ref == sid
    letters = {
        d.payload["entry_id"]: d.exception_type
        for d in committed(lambda: list(DeadLetter.objects.filter(name__startswith="consume")))
    }
    assert letters[malformed_id] == "invalid_event" and letters[ghost_id] == "unknown_session"

    # Staff answer from the inbox: stored, delivered by the Celery worker to the gateway,
    # "sent" by the fake WhatsApp, and its ack comes back as delivered.
    reply = in_alpha(
        world,
        lambda: staff_message_send(
            conversation_id=messages[0].conversation_id,
            author=User.objects.get(email=world.staff_a.email),
            text="20 USD al mes, Ana",
        ),
    )

    def sent() -> dict | None:
        for _id, fields in streams.xrange(FAKE_SENT):
            record = json.loads(fields["event"])
            if record.get("text") == "20 USD al mes, Ana":
                return record
        return None

    record = wait_for(sent, what="the fake WhatsApp's sendMessage")
    assert (record["session_id"], record["chat_id"]) == (sid, customer)

    def delivered() -> Message | None:
        message = in_alpha(world, lambda: Message.objects.get(pk=reply.pk))
        return message if message.status == "delivered" else None

    message = wait_for(delivered, what="the delivered ack")
    assert message.external_id == record["wa_id"] and message.command_event_id is not None


def test_a_consumer_killed_between_read_and_ack_is_replaced_and_the_message_stored_once(world, e2e):
    streams = e2e["streams"]
    first = e2e["consumer"]("e2e-doomed")
    e2e["gateway"]()
    session = in_alpha(world, lambda: services.whatsapp_session_create(label="E2E crash"))
    e2e["sessions"].append(session.session_id)
    in_alpha(world, lambda: services.whatsapp_session_start(session=session))
    sid = session.session_id

    def ready() -> bool:
        status = in_alpha(world, lambda: WhatsAppSession.objects.get(session_id=sid).status)
        return bool(status == "ready")

    wait_for(ready, what="the session ready")
    customer = f"52166{uuid.uuid4().int % 10**8:08d}@c.us"
    e2e["wa_ids"].append(customer)

    # Hold the contact's advisory lock: the consumer reads the entry, enters its transaction
    # and waits there, between XREADGROUP and XACK, where it is killed.
    blocker = psycopg.connect(database_url())
    try:
        blocker.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", [f"contact:{customer}"])
        drive(streams, session_id=sid, action="receive", **{"from": customer}, body="¿Hay stock?")

        def pending_on_doomed() -> bool:
            consumers = streams.xinfo_consumers(contract.inbound_stream(), contract.INBOUND_GROUP)
            return any(c["name"] == "e2e-doomed" and c["pending"] > 0 for c in consumers)

        wait_for(pending_on_doomed, what="the entry read by the doomed consumer")
        time.sleep(0.3)
        first.stop(signal.SIGKILL)
    finally:
        blocker.rollback()
        blocker.close()

    e2e["consumer"]("e2e-successor")

    def stored() -> list[Message]:
        return in_alpha(
            world, lambda: list(Message.objects.filter(conversation__contact__wa_id=customer))
        )

    wait_for(lambda: stored() and inbound_drained(streams), what="the reclaimed entry stored")
    time.sleep(2)  # one more reclaim round: still exactly one
    messages = stored()
    assert [(m.direction, m.text) for m in messages] == [("in", "¿Hay stock?")]
    with tenant_context(world.tenant_b):
        assert not Message.objects.filter(conversation__contact__wa_id=customer).exists()
