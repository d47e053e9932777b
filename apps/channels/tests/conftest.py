"""Fixtures of the WhatsApp channel tests: real Valkey streams, events built from the contract's
own examples, and, for end-to-end tests, the real gateway-node and consume_inbound processes."""

from __future__ import annotations

import copy
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

import pytest
import redis
from django.conf import settings
from django_tenants.utils import tenant_context

from conftest import on_own_connection as committed

CONTRACTS = Path(settings.BASE_DIR) / "contracts" / "streams"


def example(kind: str) -> dict[str, Any]:
    index = json.loads((CONTRACTS / "index.json").read_text())
    entry = next(t for t in index["types"] if t["type"] == kind)
    return copy.deepcopy(json.loads((CONTRACTS / entry["example"]).read_text()))


def inbound_event(kind: str, *, session_id: str, tenant_schema: str, **fields: Any) -> dict:
    """A valid inbound event of ``kind`` (the contract's example) with fresh ids."""
    event = example(kind)
    event.update(session_id=session_id, tenant_schema=tenant_schema, event_id=str(uuid.uuid4()))
    event.update(fields)
    return event


def text_message(*, session_id: str, tenant_schema: str, body: str, **fields: Any) -> dict:
    fields = {
        "wa_id": f"false_5215512345678@c.us_{uuid.uuid4().hex[:20].upper()}",
        "msg_type": "chat",
        "body": body,
        "has_media": False,
        "media": None,
        **fields,
    }
    return inbound_event("message", session_id=session_id, tenant_schema=tenant_schema, **fields)


@pytest.fixture
def streams() -> Iterator[redis.Redis]:
    """The channel's Redis client, with the EVA streams emptied before and after the test."""
    from apps.channels import contract
    from apps.channels.publisher import redis_client

    client = redis_client()

    def clean() -> None:
        keys = [contract.inbound_stream(), contract.control_stream()]
        keys += list(client.scan_iter(f"{settings.EVA_STREAM_PREFIX}:outbound:*"))
        client.delete(*keys)

    clean()
    yield client
    clean()


def xadd_event(client: redis.Redis, event: dict | str) -> str:
    from apps.channels import contract

    raw = event if isinstance(event, str) else json.dumps(event)
    return str(client.xadd(contract.inbound_stream(), {"event": raw}))


def database_url() -> str:
    """The test database's URL, for the processes an end-to-end test starts."""
    from urllib.parse import quote

    from django.db import connection

    s = connection.settings_dict
    auth = quote(s["USER"], safe="") + (
        f":{quote(s['PASSWORD'], safe='')}" if s["PASSWORD"] else ""
    )
    return f"postgresql://{auth}@{s['HOST']}:{s['PORT']}/{s['NAME']}"


# --- End to end: real processes sharing committed data --------------------------------------

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


def gateway_environment(*, gateway_id: str, folder: Path, **extra: str) -> dict[str, str]:
    """The environment of a test gateway: the fake WhatsApp (pairs at once), no pacing, media
    and sessions under ``folder``, this session's Valkey unless ``extra`` names another."""
    return {
        "PATH": os.environ["PATH"],
        "REDIS_URL": str(settings.REDIS_URL),
        "REDIS_KEY_PREFIX": PREFIX,
        "GATEWAY_ID": gateway_id,
        "GATEWAY_HEALTH_HOST": "127.0.0.1",
        "GATEWAY_HEALTH_PORT": "0",
        "MEDIA_ROOT": str(folder / "media"),
        "WA_SESSION_DIR": str(folder / "wa"),
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


def in_alpha(world, work: Callable[[], Any]) -> Any:
    def scoped() -> Any:
        with tenant_context(world.tenant_a):
            return work()

    return committed(scoped)


def started_session(world, e2e, label: str) -> str:
    """A number of tenant A started through the gateway (its fake client pairs by itself) and
    ready; returns its session id (removed by the e2e fixture afterwards)."""
    from apps.channels import services
    from apps.channels.models import WhatsAppSession

    session = in_alpha(world, lambda: services.whatsapp_session_create(label=label))
    e2e["sessions"].append(session.session_id)
    in_alpha(world, lambda: services.whatsapp_session_start(session=session))
    sid = session.session_id
    wait_for(
        lambda: in_alpha(world, lambda: WhatsAppSession.objects.get(session_id=sid).status)
        == "ready",
        what="the session ready",
    )
    return sid


@pytest.fixture
def e2e(world, streams, celery_worker, tmp_path) -> Iterator[dict[str, Any]]:
    """The gateway and consumer processes, and the clean-up of everything the test made."""
    from apps.channels.models import WhatsAppSession
    from apps.conversations.models import Contact
    from apps.ops.models import DeadLetter
    from apps.tenants.models import WhatsAppSessionIndex

    _ensure_gateway_installed()
    gateway_id = f"e2e-{os.getpid()}"
    base_env = {k: v for k, v in os.environ.items() if not k.startswith("EVA_INBOUND_")}
    made: dict[str, Any] = {
        "sessions": [],
        "wa_ids": [],
        "processes": [],
        "cleanup": [],
        "streams": streams,
    }

    def gateway(**extra: str) -> Process:
        env = gateway_environment(gateway_id=gateway_id, folder=tmp_path, **extra)
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
            with tenant_context(world.tenant_a):
                for undo in made["cleanup"]:
                    undo()

        committed(clean)
        keys = [FAKE_IN, FAKE_SENT, f"{PREFIX}:gateway:{gateway_id}:sessions"]
        keys += list(streams.scan_iter(f"{PREFIX}:gateway:*"))
        streams.delete(*keys)


def drive(client, **action: Any) -> None:
    client.xadd(FAKE_IN, {"event": json.dumps(action)})


def inbound_drained(client) -> bool:
    """Every inbound entry was read by the group and none is pending."""
    from apps.channels import contract

    groups = client.xinfo_groups(contract.inbound_stream())
    group = next(g for g in groups if g["name"] == contract.INBOUND_GROUP)
    return group["lag"] == 0 and group["pending"] == 0
