"""Managing webhook endpoints (dashboard and API): who may, which addresses are refused and
why, the secret shown once; which changes make a delivery and which do not; other tenants see
nothing."""

from __future__ import annotations

import pytest
from django.db import transaction
from django.utils import timezone
from django_tenants.utils import tenant_context

from apps.accounts.models import User
from apps.conversations.services import (
    business_message_record,
    contact_erase,
    contact_update,
    conversation_close,
    conversation_handoff,
    staff_message_send,
)
from apps.conversations.tests.test_inbox import logged_in
from apps.webhooks.models import WebhookDelivery, WebhookEndpoint
from apps.webhooks.services import webhook_delivery_attempt, webhook_endpoint_create
from apps.webhooks.tests.helpers import customer_writes, receiver_start

pytestmark = pytest.mark.django_db

ALL_EVENTS = ["conversation.closed", "conversation.handed_off", "lead.updated"]


def test_an_owner_adds_an_endpoint_and_sees_its_secret_once(world):
    owner = logged_in(world.owner_a)
    page = owner.get("/settings/webhooks/")
    assert page.status_code == 200
    assert "No endpoints yet." in page.content.decode()
    added = owner.post(
        "/settings/webhooks/",
        {
            "url": "https://93.184.215.14/eva",  # a public address (no DNS needed here)
            "description": "CRM",
            "events": ["lead.updated", "conversation.handed_off"],
            "is_active": "on",
        },
        follow=True,
    )
    body = added.content.decode()
    assert "Endpoint added. Copy its signing secret now." in body
    secret = body.split('<code class="secret">')[1].split("</code>")[0]
    assert secret.startswith("whsec_") and len(secret) > 40
    with tenant_context(world.tenant_a):
        endpoint = WebhookEndpoint.objects.get()
        assert endpoint.events == ["conversation.handed_off", "lead.updated"]
        assert secret not in endpoint.secret_encrypted  # encrypted at rest
    again = owner.get(f"/settings/webhooks/{endpoint.pk}/").content.decode()
    assert secret not in again and "https://93.184.215.14/eva" in again
    listing = owner.get("/settings/webhooks/").content.decode()
    assert "https://93.184.215.14/eva" in listing and "none yet" in listing

    # Another tenant: not listed, not readable, not changeable.
    other = logged_in(world.owner_b)
    assert "93.184.215.14" not in other.get("/settings/webhooks/").content.decode()
    assert other.get(f"/settings/webhooks/{endpoint.pk}/").status_code == 404
    assert other.post(f"/settings/webhooks/{endpoint.pk}/delete/").status_code == 404
    assert other.get(f"/api/v1/webhooks/{endpoint.pk}/").status_code == 404
    assert other.get("/api/v1/webhooks/").json()["count"] == 0
    with tenant_context(world.tenant_a):
        assert WebhookEndpoint.objects.filter(pk=endpoint.pk).exists()


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        (
            "http://93.184.215.14/eva",
            "Use an https:// address: events carry your customers' details.",
        ),
        ("https://127.0.0.1:8000/x", "127.0.0.1 is a private or local address"),
        ("https://10.1.2.3/x", "10.1.2.3 is a private or local address"),
        ("https://169.254.169.254/latest", "169.254.169.254 is a private or local address"),
        ("https://[::1]/x", "::1 is a private or local address"),
        ("https://localhost/x", "localhost is a private or local address"),
        ("https://crm.invalid/x", "The host name crm.invalid does not resolve."),
        ("https://user:pw@93.184.215.14/x", "Put no user name or password in the address."),
        ("ftp://93.184.215.14/x", "Enter a full address"),
        ("crm.example.com", "Enter a full address"),
    ],
)
def test_addresses_eva_does_not_post_to_are_refused_with_the_reason(world, url, reason):
    owner = logged_in(world.owner_a)
    page = owner.post("/settings/webhooks/", {"url": url, "events": ["lead.updated"]})
    assert page.status_code == 200
    assert reason.replace("'", "&#x27;") in page.content.decode()
    api = owner.post(
        "/api/v1/webhooks/",
        {"url": url, "events": ["lead.updated"]},
        content_type="application/json",
    )
    assert api.status_code == 400
    error = api.json()["error"]
    assert error["message"].startswith("url: ") and reason in error["message"]
    with tenant_context(world.tenant_a):
        assert not WebhookEndpoint.objects.exists()


def test_the_api_manages_endpoints_for_owners_and_admins_only(world):
    staff = logged_in(world.staff_a)
    assert staff.get("/settings/webhooks/").status_code == 403
    assert staff.get("/api/v1/webhooks/").status_code == 403
    owner = logged_in(world.owner_a)
    bad = owner.post(
        "/api/v1/webhooks/",
        {"url": "https://93.184.215.14/e", "events": ["lead.deleted"]},
        content_type="application/json",
    )
    assert bad.status_code == 400 and "lead.deleted" in bad.json()["error"]["message"]
    none = owner.post(
        "/api/v1/webhooks/",
        {"url": "https://93.184.215.14/e", "events": []},
        content_type="application/json",
    )
    assert none.status_code == 400 and none.json()["error"]["message"] == (
        "events: Choose at least one event."
    )
    created = owner.post(
        "/api/v1/webhooks/",
        {"url": "https://93.184.215.14/e", "events": ["lead.updated"], "is_active": False},
        content_type="application/json",
    )
    assert created.status_code == 201
    endpoint = created.json()
    assert endpoint["secret"].startswith("whsec_") and endpoint["is_active"] is False
    path = f"/api/v1/webhooks/{endpoint['id']}/"
    assert "secret" not in owner.get(path).json()
    assert "secret" not in str(owner.get("/api/v1/webhooks/").json())
    changed = owner.patch(
        path, {"events": ALL_EVENTS, "is_active": True}, content_type="application/json"
    )
    assert changed.status_code == 200
    assert changed.json()["events"] == ALL_EVENTS and changed.json()["is_active"] is True
    refused = owner.patch(path, {"url": "https://10.0.0.1/"}, content_type="application/json")
    assert refused.status_code == 400
    assert owner.get(path).json()["url"] == "https://93.184.215.14/e"  # unchanged
    rolled = owner.post(f"{path}roll-secret/").json()["secret"]
    assert rolled.startswith("whsec_") and rolled != endpoint["secret"]
    assert staff.delete(path).status_code == 403
    assert owner.delete(path).status_code == 204
    assert owner.get(path).status_code == 404


def _endpoint(tenant, email: str, events: list[str], *, active: bool = True) -> WebhookEndpoint:
    with tenant_context(tenant):
        endpoint, _secret = webhook_endpoint_create(
            url="https://93.184.215.14/e", events=events, created_by=User.objects.get(email=email)
        )
        if not active:
            WebhookEndpoint.objects.filter(pk=endpoint.pk).update(is_active=False)
        return endpoint


def _deliveries(tenant) -> list[tuple[str, int]]:
    with tenant_context(tenant):
        return list(WebhookDelivery.objects.order_by("id").values_list("event", "endpoint_id"))


def test_what_makes_a_delivery_and_what_does_not(world, django_capture_on_commit_callbacks):
    leads = _endpoint(world.tenant_a, world.owner_a.email, ["lead.updated"])
    every = _endpoint(world.tenant_a, world.owner_a.email, ALL_EVENTS)
    _endpoint(world.tenant_a, world.owner_a.email, ALL_EVENTS, active=False)  # paused
    beta = _endpoint(world.tenant_b, world.owner_b.email, ALL_EVENTS)
    customer = customer_writes(world.tenant_a)
    tester = customer_writes(world.tenant_a, simulated=True)

    with tenant_context(world.tenant_a):
        with django_capture_on_commit_callbacks() as queued:
            conversation_handoff(conversation_id=customer.pk, reason="customer asked for a person")
            conversation_handoff(conversation_id=customer.pk, reason="again")  # already human
            conversation_close(conversation_id=customer.pk)
            contact_update(contact=customer.contact, stage="won")
            contact_update(contact=customer.contact, stage="won")  # no change: no event
            # The business's own tests in the simulator are not its customers.
            conversation_handoff(conversation_id=tester.pk, reason="customer asked for a person")
            contact_update(contact=tester.contact, stage="won")
        # A change rolled back is not announced.
        with pytest.raises(RuntimeError), transaction.atomic():
            contact_update(contact=customer.contact, stage="lost")
            raise RuntimeError("rolled back")
    assert _deliveries(world.tenant_a) == [
        ("conversation.handed_off", every.pk),
        ("conversation.closed", every.pk),
        ("lead.updated", leads.pk),
        ("lead.updated", every.pk),
    ]
    assert len(queued) == 3  # one hand-over to the queue per committed change
    assert _deliveries(world.tenant_b) == []
    assert beta.pk  # beta's endpoint exists and heard nothing
    with tenant_context(world.tenant_a):
        lead = WebhookDelivery.objects.get(endpoint=leads)
        assert lead.payload["data"]["changed"] == ["stage"]
        assert lead.payload["data"]["contact"]["stage"] == "won"


def test_staff_or_the_business_phone_taking_a_conversation_over_is_a_handoff(world):
    _endpoint(world.tenant_a, world.owner_a.email, ["conversation.handed_off"])
    by_staff = customer_writes(world.tenant_a)
    by_phone = customer_writes(world.tenant_a)
    with tenant_context(world.tenant_a):
        owner = User.objects.get(email=world.owner_a.email)
        for text in ("Hola, soy Marta, de la tienda.", "¿Le va bien el jueves?"):
            staff_message_send(conversation_id=by_staff.pk, author=owner, text=text)
        for n in range(2):  # the business writes twice from its own phone
            business_message_record(
                channel_ref="main",
                contact_wa_id=by_phone.contact.wa_id,
                contact_phone=None,
                external_id=f"wamid.phone-{by_phone.pk}-{n}",
                kind="text",
                text="Le atiendo yo.",
                media=None,
                sent_at=timezone.now(),
            )
        sent = WebhookDelivery.objects.order_by("id")
        conversations = [delivery.payload["data"]["conversation"] for delivery in sent]
    # Once each: the second message finds the conversation with a person already.
    assert [(c["id"], c["handoff_reason"]) for c in conversations] == [
        (by_staff.pk, "staff replied"),
        (by_phone.pk, "business replied from its phone"),
    ]
    assert conversations[0]["assigned_to"] == world.owner_a.email


def test_erasing_a_customer_erases_the_events_that_carry_their_details(world):
    _endpoint(world.tenant_a, world.owner_a.email, ALL_EVENTS)
    erased, kept = customer_writes(world.tenant_a), customer_writes(world.tenant_a)
    with tenant_context(world.tenant_a):
        for conversation in (erased, kept):
            conversation_handoff(
                conversation_id=conversation.pk, reason="customer asked for a person"
            )
            contact_update(contact=conversation.contact, email="lucia@example.com")
        assert WebhookDelivery.objects.count() == 4
        contact_erase(contact_id=erased.contact_id, by=User.objects.get(email=world.owner_a.email))
        left = list(WebhookDelivery.objects.order_by("id"))
    assert [delivery.event for delivery in left] == ["conversation.handed_off", "lead.updated"]
    assert left[0].payload["data"]["conversation"]["contact"]["id"] == kept.contact_id
    assert left[1].payload["data"]["contact"]["id"] == kept.contact_id


def test_an_address_that_turns_private_after_it_was_saved_is_not_posted_to(world, settings):
    """The address is checked again at every send (a DNS name may change what it points to)."""
    receiver = receiver_start()
    try:
        settings.EVA_WEBHOOK_ALLOW_PRIVATE = True
        settings.EVA_WEBHOOK_ALLOW_HTTP = True
        endpoint = _endpoint(world.tenant_a, world.owner_a.email, ["conversation.handed_off"])
        with tenant_context(world.tenant_a):
            WebhookEndpoint.objects.filter(pk=endpoint.pk).update(url=f"{receiver.url}/x")
            delivery = WebhookDelivery.objects.create(
                endpoint=endpoint, event="conversation.handed_off", payload={"id": "x"}
            )
            settings.EVA_WEBHOOK_ALLOW_PRIVATE = False
            attempt = webhook_delivery_attempt(delivery_id=delivery.pk, last=False)
        assert attempt.retry is False
        assert attempt.delivery.status == "failed"
        assert "127.0.0.1 is a private or local address" in attempt.delivery.error
        assert receiver.requests == []
    finally:
        receiver.stop()


def test_the_sweep_ages_out_old_deliveries_and_requeues_lost_ones(
    world, django_capture_on_commit_callbacks
):
    from datetime import timedelta

    from workers.webhooks import sweep_deliveries

    endpoint = _endpoint(world.tenant_a, world.owner_a.email, ["lead.updated"])
    beta = _endpoint(world.tenant_b, world.owner_b.email, ["lead.updated"])
    now = timezone.now()

    def made(tenant, for_endpoint, status: str, age: timedelta, attempted: timedelta | None):
        with tenant_context(tenant):
            delivery = WebhookDelivery.objects.create(
                endpoint=for_endpoint, event="lead.updated", payload={}, status=status
            )
            WebhookDelivery.objects.filter(pk=delivery.pk).update(
                created_at=now - age,
                last_attempt_at=None if attempted is None else now - attempted,
            )
            return delivery.pk

    days, minutes = timedelta(days=1), timedelta(minutes=1)
    old_done = made(world.tenant_a, endpoint, "delivered", 31 * days, 31 * days)
    old_failed = made(world.tenant_a, endpoint, "failed", 40 * days, 39 * days)
    recent_failed = made(world.tenant_a, endpoint, "failed", 2 * days, 2 * days)
    lost = made(world.tenant_a, endpoint, "pending", 3 * 60 * minutes, None)  # never tried
    stalled = made(world.tenant_a, endpoint, "pending", 5 * days, 2 * 60 * minutes)
    retrying = made(world.tenant_a, endpoint, "pending", 20 * minutes, 10 * minutes)
    old_beta = made(world.tenant_b, beta, "delivered", 31 * days, 31 * days)

    with django_capture_on_commit_callbacks() as queued:
        swept = sweep_deliveries.apply().get()
    assert swept == {"deleted": 3, "requeued": 2}
    assert len(queued) == 1  # the two lost ones, handed over together
    with tenant_context(world.tenant_a):
        left = set(WebhookDelivery.objects.values_list("pk", flat=True))
    assert left == {recent_failed, lost, stalled, retrying}
    assert old_done not in left and old_failed not in left
    with tenant_context(world.tenant_b):
        assert not WebhookDelivery.objects.filter(pk=old_beta).exists()


def test_a_workspace_has_at_most_ten_endpoints(world):
    owner = logged_in(world.owner_a)
    for _ in range(10):
        _endpoint(world.tenant_a, world.owner_a.email, ["lead.updated"])
    refused = owner.post(
        "/api/v1/webhooks/",
        {"url": "https://93.184.215.14/eleventh", "events": ["lead.updated"]},
        content_type="application/json",
    )
    assert refused.status_code == 400
    assert refused.json()["error"]["message"] == "A workspace has at most 10 webhook endpoints."
    page = owner.post(
        "/settings/webhooks/", {"url": "https://93.184.215.14/eleventh", "events": ["lead.updated"]}
    )
    assert "A workspace has at most 10 webhook endpoints." in page.content.decode()
    with tenant_context(world.tenant_a):
        assert WebhookEndpoint.objects.count() == 10
    # Another workspace's count is its own.
    assert _endpoint(world.tenant_b, world.owner_b.email, ["lead.updated"]).pk
