"""Webhooks end to end: a real Celery worker on the ``webhooks`` queue posts to a real local HTTP
server (the business's system) — signed, retried with backoff, marked failed when the receiver
stays down or refuses, sent again on request with the same event id; other tenants' endpoints
hear nothing."""

from __future__ import annotations

import json
import os
import socket
import time
from collections.abc import Iterator

import pytest
from django_tenants.utils import tenant_context

from apps.accounts.models import User
from apps.conversations.services import contact_lead_fields_fill, conversation_handoff
from apps.conversations.tests.test_inbox import logged_in
from apps.knowledge.tests.conftest import HttpClient
from apps.webhooks.models import WebhookDelivery, WebhookEndpoint
from apps.webhooks.services import webhook_endpoint_create
from apps.webhooks.tests.helpers import (
    Receiver,
    customer_writes,
    forget_customers,
    receiver_start,
    signature_valid,
)
from conftest import on_own_connection as committed
from conftest import worker_process

pytestmark = pytest.mark.django_db

ATTEMPTS = 3


@pytest.fixture(scope="module")
def webhook_worker(django_db_setup) -> Iterator[object]:
    """The ``webhooks`` queue's worker, allowed to post to this machine over plain HTTP, with a
    backoff of a fraction of a second and three attempts per delivery."""
    with worker_process(
        queues="webhooks",
        node=f"webhooks-{os.getpid()}@{os.uname().nodename}",
        extra_env={
            "EVA_WEBHOOK_ALLOW_PRIVATE": "1",
            "EVA_WEBHOOK_ALLOW_HTTP": "1",
            "EVA_WEBHOOK_RETRY_BACKOFF": "0.2",
            "EVA_WEBHOOK_RETRY_BACKOFF_MAX": "0.4",
            "EVA_WEBHOOK_MAX_ATTEMPTS": str(ATTEMPTS),
            "EVA_WEBHOOK_TIMEOUT": "3",
        },
    ) as worker:
        yield worker


@pytest.fixture
def receiver(settings) -> Iterator[Receiver]:
    # This process makes the endpoints: it must accept the local receiver too.
    settings.EVA_WEBHOOK_ALLOW_PRIVATE = True
    settings.EVA_WEBHOOK_ALLOW_HTTP = True
    receiver = receiver_start()
    yield receiver
    receiver.stop()


@pytest.fixture
def made(world) -> Iterator[dict[str, list[int]]]:
    """Conversations the test made (committed), removed afterwards with every endpoint."""
    conversations: dict[str, list[int]] = {"alpha": [], "beta": []}
    yield conversations

    def clean() -> None:
        for tenant in (world.tenant_a, world.tenant_b):
            forget_customers(tenant, conversations[tenant.slug])
            with tenant_context(tenant):
                WebhookEndpoint.objects.all().delete()

    committed(clean)


def endpoint(tenant, owner_email: str, url: str, events: list[str]) -> tuple[int, str]:
    def create() -> tuple[int, str]:
        with tenant_context(tenant):
            created, secret = webhook_endpoint_create(
                url=url, events=events, created_by=User.objects.get(email=owner_email)
            )
            return created.pk, secret

    return committed(create)


def delivery_settled(tenant, endpoint_id: int, timeout: float = 30) -> WebhookDelivery:
    """The endpoint's only delivery once it is no longer pending."""
    deadline = time.monotonic() + timeout
    while True:
        with tenant_context(tenant):
            delivery = WebhookDelivery.objects.filter(endpoint_id=endpoint_id).get()
        if delivery.status != WebhookDelivery.Status.PENDING or time.monotonic() > deadline:
            return delivery
        time.sleep(0.1)


def handed_off(tenant, made: dict[str, list[int]]) -> int:
    conversation = committed(lambda: customer_writes(tenant))
    made[tenant.slug].append(conversation.pk)
    committed(lambda: _handoff(tenant, conversation.pk))
    return conversation.pk


def _handoff(tenant, conversation_id: int) -> None:
    with tenant_context(tenant):
        conversation_handoff(conversation_id=conversation_id, reason="customer asked for a person")


def test_a_handoff_reaches_the_business_system_signed(world, receiver, made, webhook_worker):
    endpoint_id, secret = endpoint(
        world.tenant_a,
        world.owner_a.email,
        f"{receiver.url}/hooks/eva?source=whatsapp",
        ["conversation.handed_off"],
    )
    # Beta listens to the same event on the same receiver: it must hear nothing of alpha's.
    endpoint(
        world.tenant_b, world.owner_b.email, f"{receiver.url}/beta", ["conversation.handed_off"]
    )
    conversation_id = handed_off(world.tenant_a, made)

    [request] = receiver.wait(1)
    assert request.path == "/hooks/eva?source=whatsapp"
    assert request.headers["Content-Type"] == "application/json"
    assert request.headers["User-Agent"] == "EVA-Webhooks/1"
    assert request.headers["X-EVA-Event"] == "conversation.handed_off"
    assert abs(int(request.headers["X-EVA-Timestamp"]) - time.time()) < 60
    assert signature_valid(secret, request)
    assert not signature_valid("whsec_someone-else", request)
    event = json.loads(request.body)
    assert event["type"] == "conversation.handed_off"
    assert event["id"] == request.headers["X-EVA-Event-Id"]
    assert event["workspace"] == "alpha"
    conversation = event["data"]["conversation"]
    assert conversation["id"] == conversation_id
    assert conversation["mode"] == "human" and conversation["channel"] == "whatsapp"
    assert conversation["handoff_reason"] == "customer asked for a person"
    assert conversation["contact"]["name"] == "Lucía"
    assert conversation["contact"]["phone"].startswith("+3460")

    delivery = delivery_settled(world.tenant_a, endpoint_id)
    assert delivery.status == "delivered" and delivery.attempts == 1
    assert delivery.response_status == 200 and delivery.error == ""
    time.sleep(0.5)
    assert len(receiver.requests) == 1  # nothing for beta's endpoint


def test_a_receiver_that_fails_for_a_while_gets_the_event_after_retries(
    world, receiver, made, webhook_worker
):
    receiver.answers = [503, 503]
    endpoint_id, secret = endpoint(
        world.tenant_a, world.owner_a.email, f"{receiver.url}/flaky", ["lead.updated"]
    )
    conversation = committed(lambda: customer_writes(world.tenant_a))
    made["alpha"].append(conversation.pk)

    def lead_given() -> list[str]:
        with tenant_context(world.tenant_a):
            return contact_lead_fields_fill(
                contact_id=conversation.contact_id,
                values={"email": "lucia@example.com", "budget": "900 euros"},
            )

    assert committed(lead_given) == ["email", "budget", "stage"]

    requests = receiver.wait(ATTEMPTS)
    assert len({request.headers["X-EVA-Event-Id"] for request in requests}) == 1
    assert all(signature_valid(secret, request) for request in requests)
    event = json.loads(requests[-1].body)
    assert event["type"] == "lead.updated"
    assert event["data"]["changed"] == ["budget", "email", "stage"]
    contact = event["data"]["contact"]
    assert contact["email"] == "lucia@example.com" and contact["stage"] == "qualified"
    delivery = delivery_settled(world.tenant_a, endpoint_id)
    assert delivery.status == "delivered" and delivery.attempts == ATTEMPTS


def test_a_refusal_is_not_retried_and_can_be_sent_again_later(
    world, receiver, made, webhook_worker, live_server_port
):
    receiver.answers = [400]
    endpoint_id, _secret = endpoint(
        world.tenant_a, world.owner_a.email, f"{receiver.url}/strict", ["conversation.handed_off"]
    )
    handed_off(world.tenant_a, made)
    delivery = delivery_settled(world.tenant_a, endpoint_id)
    assert delivery.status == "failed" and delivery.attempts == 1
    assert delivery.response_status == 400
    assert delivery.error == "HTTP 400: receiver says no"
    time.sleep(0.6)  # a retry would have come by now
    assert len(receiver.requests) == 1

    # The business fixed its receiver; an owner sends the event again from the API (the live
    # server: what it writes is committed, as the worker must see it).
    owner = HttpClient(live_server_port, world.owner_a)
    _status, listed = owner.request("GET", f"/api/v1/webhooks/{endpoint_id}/deliveries/")
    assert [item["status"] for item in listed["results"]] == ["failed"]
    redeliver = f"/api/v1/webhooks/{endpoint_id}/deliveries/{delivery.pk}/redeliver/"
    status, resent = owner.request("POST", redeliver)
    assert status == 202 and resent["status"] == "pending"
    first, second = receiver.wait(2)
    assert second.headers["X-EVA-Event-Id"] == first.headers["X-EVA-Event-Id"]
    assert second.body == first.body
    delivery = delivery_settled(world.tenant_a, endpoint_id)
    assert delivery.status == "delivered" and delivery.attempts == 2
    status, again = owner.request("POST", redeliver)
    assert status == 400
    assert again["error"]["message"] == "This event was delivered already."


def test_a_receiver_that_stays_down_ends_failed_after_the_last_attempt(
    world, receiver, made, webhook_worker
):
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        closed = probe.getsockname()[1]
    endpoint_id, _secret = endpoint(
        world.tenant_a,
        world.owner_a.email,
        f"http://127.0.0.1:{closed}/down",
        ["conversation.handed_off"],
    )
    handed_off(world.tenant_a, made)
    delivery = delivery_settled(world.tenant_a, endpoint_id)
    assert delivery.status == "failed" and delivery.attempts == ATTEMPTS
    assert delivery.response_status is None
    assert delivery.error.startswith("no answer:")
    # Shown on the endpoint's page, with a way to send it again.
    page = logged_in(world.owner_a).get(f"/settings/webhooks/{endpoint_id}/").content.decode()
    assert "no answer:" in page
    assert f"/settings/webhooks/{endpoint_id}/deliveries/{delivery.pk}/redeliver/" in page


@pytest.mark.browser
def test_in_the_browser_an_owner_adds_an_endpoint_and_watches_a_test_event_arrive(
    world, receiver, made, webhook_worker, page, live_server_port
):
    from playwright.sync_api import expect

    from apps.dashboard.tests.test_browser import log_in

    log_in(page, live_server_port, world.owner_a)
    expect(page.locator("h1")).to_contain_text("Alpha Store")
    page.goto(f"http://alpha.localhost:{live_server_port}/settings/webhooks/")
    expect(page.locator("nav.tabs [aria-current=page]")).to_have_text("Webhooks")
    page.fill("#id_url", f"{receiver.url}/from-browser")
    page.fill("#id_description", "Sales spreadsheet")
    page.check("input[value='lead.updated']")
    page.click("#endpoint-form button[type=submit]")
    expect(page.locator("#new-secret code.secret")).to_contain_text("whsec_")
    secret = page.locator("#new-secret code.secret").inner_text().strip()

    page.click("text=Send a test event")
    expect(page.locator(".messages")).to_contain_text("Test event queued")
    # The table refreshes itself while the delivery is pending.
    row = page.locator("#deliveries tr[data-status]")
    expect(row).to_have_attribute("data-status", "delivered", timeout=20_000)
    expect(row).to_contain_text("webhook.test")
    expect(row).to_contain_text("HTTP 200")
    [request] = receiver.requests
    assert request.path == "/from-browser" and signature_valid(secret, request)
    assert json.loads(request.body)["data"] == {"message": "This is a test event from EVA."}

    page.reload()
    expect(page.locator("#new-secret")).to_have_count(0)  # shown once
