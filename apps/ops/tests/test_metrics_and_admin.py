"""Operators' figures in /readyz and `dlq stats`; dead letters in the platform admin only."""

from __future__ import annotations

import json
import uuid
from io import StringIO

import pytest
from django.core.management import call_command
from django.test import Client

from apps.ops.models import DeadLetter
from apps.ops.services import dead_letter_record
from apps.ops.stream import redis_client

pytestmark = pytest.mark.django_db


def _dead(name: str, tenant: str | None) -> DeadLetter:
    return dead_letter_record(
        source="task",
        name=name,
        payload={"args": [], "kwargs": {}},
        tenant_schema=tenant,
        error="secret-free error text",
        attempts=2,
    )


def test_readyz_reports_queue_depths_dead_letters_and_the_inbound_stream(world, settings):
    settings.EVA_READYZ_REQUIRE_WORKER = False
    before = Client().get("/readyz", HTTP_HOST="localhost").json()["metrics"]["dead_letters"]
    _dead(f"workers.test.m_{uuid.uuid4().hex[:6]}", "alpha")
    client = redis_client()
    stream = f"{settings.EVA_STREAM_PREFIX}:inbound"
    group = f"metrics-test-{uuid.uuid4().hex[:6]}"
    try:
        client.xgroup_create(stream, group, id="$", mkstream=True)
        client.xadd(stream, {"type": "message"})
        client.xreadgroup(group, "c1", {stream: ">"}, count=1)  # read, never acknowledged
        body = Client().get("/readyz", HTTP_HOST="localhost").json()
    finally:
        client.xgroup_destroy(stream, group)
    metrics = body["metrics"]
    assert set(metrics["queues"]) == {
        "agent",
        "embedding",
        "transcription",
        "dlq",
        "webhooks",
        "unacked",
    }
    assert all(isinstance(depth, int) for depth in metrics["queues"].values())
    assert metrics["dead_letters"]["new"] == before["new"] + 1
    assert metrics["dead_letters"]["last_hour"] == before["last_hour"] + 1
    pending = metrics["inbound"]["groups"][group]
    assert pending["pending"] == 1
    assert pending["oldest_pending_age_s"] >= 0
    assert set(body["checks"]) == {"database", "migrations", "redis", "media"}


def test_queue_depth_counts_messages_waiting_in_a_queue():
    from apps.ops.health import queue_metrics
    from eva.celery import app

    queue = f"metrics-test-{uuid.uuid4().hex[:6]}"  # a queue no worker consumes
    try:
        app.send_task("workers.diagnostics.ping", queue=queue)
        app.send_task("workers.diagnostics.ping", queue=queue, priority=6)
        assert queue_metrics((queue,))[queue] == 2
    finally:
        for key in (queue, f"{queue}\x06\x166"):
            redis_client().delete(key)
    assert queue_metrics((queue,))[queue] == 0


def test_dlq_stats_counts_by_status_task_and_tenant(world):
    name = f"workers.test.s_{uuid.uuid4().hex[:6]}"
    _dead(name, "alpha")
    _dead(name, "alpha")
    _dead(name, None)
    out = StringIO()
    call_command("dlq", "stats", "--json", stdout=out)
    stats = json.loads(out.getvalue())
    assert stats["dead_letters"]["new_by_task"][name] == 3
    assert stats["dead_letters"]["new_by_tenant"]["alpha"] >= 2
    assert stats["dead_letters"]["new_by_tenant"]["public"] >= 1
    assert "queues" in stats


def _platform_staff_client() -> Client:
    from apps.accounts.models import User

    email = f"ops-{uuid.uuid4().hex[:6]}@platform.test"
    User.objects.create_superuser(email=email, password="x-Very-long-pass-123")
    client = Client()
    assert client.login(email=email, password="x-Very-long-pass-123")
    return client


def test_platform_staff_see_dead_letters_of_every_tenant_in_the_public_admin(world):
    dead_a = _dead(f"workers.test.adm_{uuid.uuid4().hex[:6]}", "alpha")
    dead_b = _dead(f"workers.test.adm_{uuid.uuid4().hex[:6]}", "beta")
    client = _platform_staff_client()
    page = client.get("/admin/ops/deadletter/", HTTP_HOST="localhost")
    assert page.status_code == 200
    html = page.content.decode()
    assert dead_a.name in html and dead_b.name in html
    detail = client.get(f"/admin/ops/deadletter/{dead_a.pk}/change/", HTTP_HOST="localhost")
    assert detail.status_code == 200 and "secret-free error text" in detail.content.decode()
    discard = client.post(
        "/admin/ops/deadletter/",
        {"action": "discard", "_selected_action": [dead_b.pk]},
        HTTP_HOST="localhost",
    )
    assert discard.status_code == 302
    dead_b.refresh_from_db()
    assert dead_b.status == "discarded"


def test_tenant_hosts_have_no_dead_letter_admin(world):
    response = Client().get("/admin/ops/deadletter/", HTTP_HOST=world.owner_a.host)
    assert response.status_code == 404


def test_the_health_command_prints_the_dead_letter_count(world, settings):
    settings.EVA_READYZ_REQUIRE_WORKER = False
    _dead(f"workers.test.h_{uuid.uuid4().hex[:6]}", "beta")
    out = StringIO()
    call_command("health", stdout=out)
    lines = out.getvalue().splitlines()
    assert any(line.startswith("ok   database") for line in lines)
    dead_line = next(line for line in lines if line.split()[:1] == ["dead_letters"])
    assert "new" in dead_line and "last_hour" in dead_line
    assert any(line.split()[:1] == ["queues"] and "dlq" in line for line in lines)
    out = StringIO()
    call_command("health", "--json", stdout=out)
    assert json.loads(out.getvalue())["metrics"]["dead_letters"]["new"] >= 1
