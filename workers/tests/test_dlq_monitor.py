"""dlq-monitor: one JSON log line per dead letter, counts per task and tenant, signed webhook."""

from __future__ import annotations

import hashlib
import hmac
import io
import json
import logging
import threading
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer

import pytest
from django.conf import settings as django_settings
from django_tenants.utils import tenant_context

from apps.ops.models import DeadLetter
from apps.ops.monitor import dead_letters_monitor, monitor_counts
from apps.ops.services import dead_letter_record
from apps.ops.stream import DEAD_LETTER_STREAM, dead_letter_publish, redis_client
from apps.ops.tests.fixtures import committed_db, wait_until
from workers.diagnostics import fails_until_fixed

__all__ = ["committed_db"]


@pytest.fixture
def json_log() -> Iterator[io.StringIO]:
    """The eva.dlq logger's output through the production JSON formatter (LOGGING)."""
    from pythonjsonlogger.json import JsonFormatter

    spec = django_settings.LOGGING["formatters"]["json"]
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter(spec["fmt"], rename_fields=spec["rename_fields"]))
    logger = logging.getLogger("eva.dlq")
    logger.addHandler(handler)
    try:
        yield stream
    finally:
        logger.removeHandler(handler)


def lines_for(stream: io.StringIO, ids: set[int]) -> list[dict[str, object]]:
    records = [json.loads(line) for line in stream.getvalue().splitlines() if line.strip()]
    return [r for r in records if r.get("dead_letter_id") and int(r["dead_letter_id"]) in ids]


def _record(name: str, tenant: str | None) -> DeadLetter:
    return dead_letter_record(
        source="task",
        name=name,
        payload={"args": [1], "kwargs": {}},
        tenant_schema=tenant,
        error="boom",
        attempts=3,
        exception_type="ValueError",
    )


@pytest.mark.usefixtures("committed_db")
def test_the_monitor_logs_one_json_line_per_dead_letter_and_counts_them(world, json_log):
    name = f"workers.test.monitored_{uuid.uuid4().hex[:8]}"
    first = _record(name, "alpha")
    second = _record(name, "beta")
    before = monitor_counts()

    report = dead_letters_monitor(consumer="test")
    lines = lines_for(json_log, {first.pk, second.pk})
    assert len(lines) == 2
    by_id = {int(str(line["dead_letter_id"])): line for line in lines}
    assert by_id[first.pk]["task"] == name
    assert by_id[first.pk]["tenant_schema"] == "alpha"
    assert by_id[second.pk]["tenant_schema"] == "beta"
    assert by_id[first.pk]["level"] == "ERROR"
    assert by_id[first.pk]["logger"] == "eva.dlq"
    assert by_id[first.pk]["error"] == "boom"
    assert by_id[first.pk]["attempts"] == 3
    assert report.by_task[name] == 2

    after = monitor_counts()
    assert after["by_task"][name] == 2
    assert after["by_tenant"]["alpha"] - before["by_tenant"].get("alpha", 0) >= 1

    # Read once: a second run does not report them again.
    dead_letters_monitor(consumer="test")
    assert len(lines_for(json_log, {first.pk, second.pk})) == 2


@pytest.mark.usefixtures("committed_db", "celery_worker")
def test_a_task_failure_reaches_the_monitor_run_by_the_worker_on_the_dlq_queue(world):
    from workers.dlq import monitor_dead_letters

    with tenant_context(world.tenant_a):
        result = fails_until_fixed.delay(uuid.uuid4().hex)
    dead = wait_until(lambda: DeadLetter.objects.filter(task_id=result.id).first())
    report = monitor_dead_letters.delay().get(timeout=30)
    assert report["logged"] >= 1
    assert report["by_task"].get("workers.diagnostics.fails_until_fixed", 0) >= 1
    assert dead.pk  # recorded before the monitor saw it


@pytest.mark.django_db
def test_a_failure_recorded_while_the_database_was_down_is_stored_by_the_monitor(world):
    task_id = f"unstored-{uuid.uuid4().hex}"
    dead_letter_publish(
        {
            "event": "unstored",
            "store_error": "OperationalError: connection refused",
            "record": json.dumps(
                {
                    "source": "task",
                    "name": "workers.diagnostics.fails_until_fixed",
                    "payload": {"args": ["k"], "kwargs": {}, "queue": "agent"},
                    "tenant_schema": "beta",
                    "error": "database unavailable",
                    "exception_type": "django.db.utils.OperationalError",
                    "traceback": "Traceback ...",
                    "attempts": 6,
                    "worker_host": "w1",
                    "task_id": task_id,
                }
            ),
        }
    )
    report = dead_letters_monitor(consumer="test")
    assert report.stored >= 1
    stored = DeadLetter.objects.get(task_id=task_id)
    assert (stored.tenant_schema, stored.attempts, stored.payload["args"]) == ("beta", 6, ["k"])


class _Webhook(BaseHTTPRequestHandler):
    received: list[tuple[bytes, str]] = []
    fail_first = 1

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        type(self).received.append((body, self.headers.get("X-EVA-Signature", "")))
        status = 503 if len(type(self).received) <= type(self).fail_first else 204
        self.send_response(status)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


@pytest.mark.usefixtures("committed_db")
def test_the_webhook_gets_a_signed_summary_and_is_retried(world, settings):
    server = HTTPServer(("127.0.0.1", 0), _Webhook)
    _Webhook.received = []
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    settings.EVA_DLQ_WEBHOOK_URL = f"http://127.0.0.1:{server.server_address[1]}/hook"
    settings.EVA_DLQ_WEBHOOK_SECRET = "s3cret-for-tests"
    settings.EVA_DLQ_WEBHOOK_ATTEMPTS = 3
    try:
        dead_letters_monitor(consumer="test")  # drain what earlier tests left
        _Webhook.received = []
        name = f"workers.test.hooked_{uuid.uuid4().hex[:8]}"
        dead = _record(name, "alpha")
        report = dead_letters_monitor(consumer="test")
    finally:
        server.shutdown()
    assert report.webhook == "sent"
    assert len(_Webhook.received) == 2  # a 503, then accepted
    body, signature = _Webhook.received[-1]
    expected = hmac.new(b"s3cret-for-tests", body, hashlib.sha256).hexdigest()
    assert signature == f"sha256={expected}"
    summary = json.loads(body)
    assert summary["type"] == "eva.dead_letters"
    # Other tests' retried tasks may fail for good meanwhile; ours is in the summary once.
    assert summary["count"] >= 1
    assert summary["by_task"][name] == 1
    assert [item["id"] for item in summary["items"]].count(str(dead.pk)) == 1


@pytest.mark.django_db
def test_the_dead_letter_stream_is_readable_by_the_monitor_group(world):
    from apps.ops.stream import MONITOR_GROUP

    dead_letters_monitor(consumer="test")
    groups = {g["name"] for g in redis_client().xinfo_groups(DEAD_LETTER_STREAM)}  # type: ignore[union-attr]
    assert MONITOR_GROUP in groups


@pytest.mark.usefixtures("committed_db")
def test_a_task_failure_while_postgres_is_unreachable_is_kept_on_the_stream_until_stored(world):
    """The base classes' fallback: the record travels on the stream, the monitor stores it."""
    import socket
    from types import SimpleNamespace

    from django.db import OperationalError, connection

    from workers.base import record_task_failure

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        closed_port = sock.getsockname()[1]
    task_id = f"pg-down-{uuid.uuid4().hex}"
    task = SimpleNamespace(name="workers.test.pg_down", request=SimpleNamespace(id=None))
    original = dict(connection.settings_dict)
    connection.close()
    connection.settings_dict["PORT"] = closed_port  # PostgreSQL "down" for this process
    try:
        record_task_failure(
            task=task,
            exc=OperationalError("server closed the connection unexpectedly"),
            task_id=task_id,
            args=[7],
            kwargs={"x": 1},
            einfo=None,
        )
    finally:
        connection.close()
        connection.settings_dict.update(original)
    assert not DeadLetter.objects.filter(task_id=task_id).exists()

    report = dead_letters_monitor(consumer="test")
    assert report.stored >= 1
    stored = DeadLetter.objects.get(task_id=task_id)
    assert stored.payload["args"] == [7] and stored.payload["kwargs"] == {"x": 1}
    assert stored.exception_type == "django.db.utils.OperationalError"
