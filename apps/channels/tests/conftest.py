"""Fixtures of the WhatsApp channel tests: real Valkey streams, events built from the contract's
own examples, and committed sessions for tests that involve other processes."""

from __future__ import annotations

import copy
import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from django.conf import settings

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
