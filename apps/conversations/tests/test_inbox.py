"""The inbox in the dashboard and the API: filters, thread, take over / return / close, staff
replies, lead edits — and tenant B cannot read or touch any of tenant A's conversations."""

from __future__ import annotations

import re
import uuid

import pytest
from django.test import Client
from django.utils import timezone
from django_tenants.utils import tenant_context

from apps.accounts.models import User
from apps.conversations.models import Contact, Conversation, Message
from apps.conversations.services import inbound_message_record

pytestmark = pytest.mark.django_db


def logged_in(persona) -> Client:
    client = Client(HTTP_HOST=persona.host)
    response = client.post("/login/", {"username": persona.email, "password": persona.password})
    assert response.status_code == 302
    return client


def customer_writes(tenant, text: str, wa_id: str = "5215512345678@c.us") -> Conversation:
    with tenant_context(tenant):
        return inbound_message_record(
            channel="whatsapp",
            channel_ref="main",
            contact_wa_id=wa_id,
            contact_phone="+5215512345678",
            contact_name="Lucía Pérez",
            external_id=f"wamid.{uuid.uuid4().hex}",
            kind="text",
            text=text,
            media=None,
            sent_at=timezone.now(),
        ).conversation


def test_dashboard_inbox_thread_actions_and_isolation(world):
    conversation = customer_writes(world.tenant_a, "¿Tienen el sofá Oslo en gris?")
    staff = logged_in(world.staff_a)

    inbox = staff.get("/inbox/")
    assert inbox.status_code == 200 and "Lucía Pérez" in inbox.content.decode()
    assert "Lucía" not in staff.get("/inbox/?mode=human").content.decode()
    assert "Lucía" in staff.get("/inbox/?unread=on&stage=new").content.decode()
    assert "Lucía" in staff.get("/inbox/?q=oslo").content.decode()  # the message's words
    assert "Lucía" not in staff.get("/inbox/?q=mesa").content.decode()
    assert 'placeholder="Nombre, teléfono, correo o mensaje"' in (
        staff.get("/inbox/", HTTP_ACCEPT_LANGUAGE="es").content.decode()
    )
    rows = staff.get("/inbox/?mode=bot", HTTP_HX_REQUEST="true")
    assert "<html" not in rows.content.decode() and "Lucía" in rows.content.decode()

    thread = staff.get(f"/inbox/{conversation.pk}/")
    assert "¿Tienen el sofá Oslo en gris?" in thread.content.decode()
    with tenant_context(world.tenant_a):
        assert Conversation.objects.get(pk=conversation.pk).unread_count == 0

    took = staff.post(f"/inbox/{conversation.pk}/takeover/", HTTP_HX_REQUEST="true")
    assert 'id="conversation-mode">Human' in took.content.decode()
    # Taken over and read by a staff member: nobody is waiting for a person.
    assert staff.get("/inbox/badge/").content.decode().strip() == ""
    customer_writes(world.tenant_a, "¿Hola?")
    assert "1 needs a person" in staff.get("/inbox/badge/").content.decode()

    sent = staff.post(f"/inbox/{conversation.pk}/reply/", {"text": "Sí, en gris perla."})
    assert sent.status_code == 302
    with tenant_context(world.tenant_a):
        reply = Message.objects.filter(conversation=conversation, sender="staff").get()
        assert (reply.text, reply.status, reply.author.email) == (
            "Sí, en gris perla.",
            "queued",
            world.staff_a.email,
        )

    lead = staff.post(
        f"/inbox/{conversation.pk}/lead/",
        {"name": "Lucía", "email": "lucia@example.com", "stage": "qualified", "budget": "900"},
        HTTP_HX_REQUEST="true",
    )
    assert "Saved." in lead.content.decode()
    bad = staff.post(f"/inbox/{conversation.pk}/lead/", {"email": "not-an-email", "stage": "new"})
    assert bad.status_code == 302
    with tenant_context(world.tenant_a):
        contact = Contact.objects.get(pk=conversation.contact_id)
        assert (contact.email, contact.stage, contact.budget) == (
            "lucia@example.com",
            "qualified",
            "900",
        )

    back = staff.post(f"/inbox/{conversation.pk}/return/", HTTP_HX_REQUEST="true")
    assert 'id="conversation-mode">Bot' in back.content.decode()
    closed = staff.post(f"/inbox/{conversation.pk}/close/", HTTP_HX_REQUEST="true")
    assert 'id="conversation-mode">Closed' in closed.content.decode()

    # Tenant B: nothing of A's in the list, and every URL of A's conversation is a 404.
    owner_b = logged_in(world.owner_b)
    assert "Lucía" not in owner_b.get("/inbox/?channel=whatsapp").content.decode()
    for path in ("", "thread/"):
        assert owner_b.get(f"/inbox/{conversation.pk}/{path}").status_code == 404
    for action in ("takeover", "return", "close", "reply", "lead"):
        response = owner_b.post(f"/inbox/{conversation.pk}/{action}/", {"text": "hi"})
        assert response.status_code == 404
    with tenant_context(world.tenant_a):
        assert Conversation.objects.get(pk=conversation.pk).mode == "closed"
        assert Message.objects.filter(conversation=conversation, sender="staff").count() == 1


def test_api_contacts_conversations_messages_and_isolation(world):
    conversation = customer_writes(world.tenant_a, "Hola, me llamo Ana", wa_id="111@c.us")
    token_client = logged_in(world.owner_a)
    key = token_client.post(
        "/api/v1/tokens/", {"name": "crm"}, content_type="application/json"
    ).json()["key"]
    api = Client(HTTP_HOST=world.owner_a.host, HTTP_AUTHORIZATION=f"Bearer {key}")

    listing = api.get("/api/v1/conversations/").json()
    ids = [c["id"] for c in listing["results"]]
    assert conversation.pk in ids
    detail = api.get(f"/api/v1/conversations/{conversation.pk}/").json()
    assert detail["mode"] == "bot" and detail["contact"]["wa_id"] == "111@c.us"
    messages = api.get(f"/api/v1/conversations/{conversation.pk}/messages/").json()["results"]
    assert [m["text"] for m in messages] == ["Hola, me llamo Ana"]
    assert messages[0]["direction"] == "in" and messages[0]["status"] == "received"

    handoff = api.post(
        f"/api/v1/conversations/{conversation.pk}/handoff/",
        {"reason": "VIP customer"},
        content_type="application/json",
    )
    assert handoff.json()["mode"] == "human" and handoff.json()["handoff_reason"] == "VIP customer"
    assert [c["id"] for c in api.get("/api/v1/conversations/?mode=human").json()["results"]] == [
        conversation.pk
    ]
    assert api.get("/api/v1/conversations/?mode=human&unread=1&q=").status_code == 200
    # A filter value outside its choices is an error naming it, not an empty list.
    for query, field in (
        ("mode=humano", "mode"),
        ("channel=telegram", "channel"),
        ("agent=abc", "agent"),
        ("unread=maybe", "unread"),
    ):
        refused = api.get(f"/api/v1/conversations/?{query}")
        assert refused.status_code == 400, query
        assert field in refused.json()["error"]["fields"], query
    bad_stage = api.get("/api/v1/contacts/?stage=bogus").json()["error"]
    assert bad_stage["message"] == 'stage: "bogus" is not a valid choice.'
    sent = api.post(
        f"/api/v1/conversations/{conversation.pk}/messages/",
        {"text": "Hola Ana, soy Pedro."},
        content_type="application/json",
    )
    assert sent.status_code == 201
    assert sent.json()["sender"] == "staff" and sent.json()["status"] == "queued"
    empty = api.post(
        f"/api/v1/conversations/{conversation.pk}/messages/",
        {"text": ""},
        content_type="application/json",
    )
    assert empty.status_code == 400 and empty.json()["error"]["code"] == "invalid"

    contact_id = detail["contact"]["id"]
    patched = api.patch(
        f"/api/v1/contacts/{contact_id}/",
        {"email": "ana@example.com", "stage": "won"},
        content_type="application/json",
    )
    assert patched.status_code == 200 and patched.json()["stage"] == "won"
    assert (
        api.patch(
            f"/api/v1/contacts/{contact_id}/", {"stage": "maybe"}, content_type="application/json"
        ).status_code
        == 400
    )
    assert api.post(f"/api/v1/conversations/{conversation.pk}/return/").json()["mode"] == "bot"
    assert api.post(f"/api/v1/conversations/{conversation.pk}/close/").json()["mode"] == "closed"

    # Tenant B, with its own valid token and session: 404 for every one of A's ids.
    owner_b = logged_in(world.owner_b)
    assert owner_b.get("/api/v1/conversations/").json()["count"] == 0
    assert owner_b.get("/api/v1/contacts/").json()["count"] == 0
    assert owner_b.get(f"/api/v1/conversations/{conversation.pk}/").status_code == 404
    assert owner_b.get(f"/api/v1/conversations/{conversation.pk}/messages/").status_code == 404
    assert owner_b.get(f"/api/v1/contacts/{contact_id}/").status_code == 404
    assert (
        owner_b.patch(
            f"/api/v1/contacts/{contact_id}/", {"name": "x"}, content_type="application/json"
        ).status_code
        == 404
    )
    for action in ("handoff", "return", "close"):
        assert owner_b.post(f"/api/v1/conversations/{conversation.pk}/{action}/").status_code == 404
    assert (
        owner_b.post(
            f"/api/v1/conversations/{conversation.pk}/messages/",
            {"text": "hi"},
            content_type="application/json",
        ).status_code
        == 404
    )
    # A's token does not work on B's host either.
    assert (
        Client(HTTP_HOST=world.owner_b.host, HTTP_AUTHORIZATION=f"Bearer {key}")
        .get("/api/v1/conversations/")
        .status_code
        == 401
    )
    with tenant_context(world.tenant_a):
        assert Message.objects.filter(conversation=conversation, sender="staff").count() == 1


def test_a_handoff_in_the_simulator_leaves_the_replies_already_shown_alone(world):
    """The simulator shows replies in place (there is nothing to send): they are delivered at
    once, and staff taking the chat over does not turn them into cancelled ones."""
    from apps.conversations.services import BotReply, bot_reply_record, staff_message_send

    with tenant_context(world.tenant_a):
        record = inbound_message_record(
            channel="simulator",
            channel_ref="",
            contact_wa_id=f"sim:{uuid.uuid4().hex}",
            contact_phone=None,
            contact_name="Simulator",
            external_id=f"sim.{uuid.uuid4().hex}",
            kind="text",
            text="¿Tienen sofás?",
            media=None,
            sent_at=timezone.now(),
        )
        bot = bot_reply_record(
            conversation_id=record.conversation.pk,
            answered_through_id=record.message.pk,
            replied_to_ids=[record.message.pk],
            reply=BotReply("Sí, el Oslo.", "local", "m", 5, 10, 3, None, []),
        )
        assert bot is not None and bot.status == "delivered"
        staff = staff_message_send(
            conversation_id=record.conversation.pk,
            author=User.objects.get(email=world.staff_a.email),
            text="Hola, soy Pedro.",
        )
        bot.refresh_from_db()
        assert (bot.status, bot.error) == ("delivered", "")
        assert staff.status == "delivered"


def test_evas_own_handoff_reasons_are_shown_in_the_readers_language(world):
    from django.utils import translation

    conversation = customer_writes(world.tenant_a, "Quiero hablar con alguien")
    with tenant_context(world.tenant_a):
        Conversation.objects.filter(pk=conversation.pk).update(
            mode="human", handoff_reason="customer asked for a person"
        )
    page = (
        logged_in(world.staff_a)
        .get(f"/inbox/{conversation.pk}/", HTTP_ACCEPT_LANGUAGE="es")
        .content.decode()
    )
    assert "el cliente pidió hablar con una persona" in page

    with translation.override("es"):
        conversation.handoff_reason = "no relevant knowledge for 3 turns"
        assert conversation.handoff_reason_display == "sin conocimiento relevante durante 3 turnos"
        conversation.handoff_reason = "VIP: llamar antes de las 18:00"  # a person's own words
        assert conversation.handoff_reason_display == "VIP: llamar antes de las 18:00"
    with translation.override("en"):
        conversation.handoff_reason = "staff replied"
        assert conversation.handoff_reason_display == "staff replied"


def test_the_reply_box_says_what_it_is_for_in_the_readers_language(world):
    conversation = customer_writes(world.tenant_a, "¿Tienen envío a Sevilla?")
    staff = logged_in(world.staff_a)
    for language, hint in (("es", "Escriba al cliente…"), ("en", "Write to the customer…")):
        page = staff.get(f"/inbox/{conversation.pk}/", HTTP_ACCEPT_LANGUAGE=language)
        box = re.search(r'<textarea name="text"[^>]*>', page.content.decode())[0]
        assert f'placeholder="{hint}"' in box


def test_evas_notes_in_a_thread_are_shown_in_the_readers_language(world):
    from apps.conversations.services import (
        conversation_close,
        conversation_handoff,
        conversation_return_to_bot,
    )

    conversation = customer_writes(world.tenant_a, "Quiero hablar con alguien")
    with tenant_context(world.tenant_a):
        conversation_handoff(conversation_id=conversation.pk, reason="customer asked for a person")
        conversation_return_to_bot(conversation_id=conversation.pk)
        conversation_handoff(conversation_id=conversation.pk, reason="VIP: llamar a las 18:00")
        conversation_close(conversation_id=conversation.pk)
        stored = list(
            Message.objects.filter(conversation=conversation, kind="system").values_list(
                "text", flat=True
            )
        )
    # Stored (and given to the API) as EVA wrote them.
    assert stored == [
        "Handed to a human: customer asked for a person",
        "Returned to the bot by system",
        "Handed to a human: VIP: llamar a las 18:00",
        "Closed by system",
    ]
    client = logged_in(world.staff_a)
    spanish = client.get(f"/inbox/{conversation.pk}/", HTTP_ACCEPT_LANGUAGE="es").content.decode()
    assert "Pasada a una persona: el cliente pidió hablar con una persona" in spanish
    assert "Devuelta al bot por el sistema" in spanish
    assert "Pasada a una persona: VIP: llamar a las 18:00" in spanish  # a person's own words
    assert "Cerrada por el sistema" in spanish
    assert "Handed to a human" not in spanish
    english = client.get(f"/inbox/{conversation.pk}/", HTTP_ACCEPT_LANGUAGE="en").content.decode()
    assert "Handed to a human: customer asked for a person" in english
    assert "Closed by system" not in english and "Closed by the system" in english


def test_times_are_shown_in_the_readers_time_zone(world):
    import datetime as dt

    conversation = customer_writes(world.tenant_a, "¿A qué hora abren?")
    with tenant_context(world.tenant_a):
        Message.objects.filter(conversation=conversation).update(
            created_at=dt.datetime(2026, 1, 15, 10, 5, tzinfo=dt.UTC)
        )
    staff = logged_in(world.staff_a)

    def shown(zone: str | None) -> str:
        if zone is None:
            staff.cookies.pop("eva_tz", None)
        else:
            staff.cookies["eva_tz"] = zone
        page = staff.get(f"/inbox/{conversation.pk}/").content.decode()
        return re.search(r'<time datetime="2026-01-15T[^"]*">([^<]+)</time>', page)[1]

    assert shown(None) == "10:05"  # UTC
    assert shown("Europe/Madrid") == "11:05"
    assert shown("America/Sao_Paulo") == "07:05"
    assert shown("Mars/Olympus") == "10:05"  # unknown: UTC


def test_the_inbox_says_how_long_ago_in_the_readers_language(world):
    import datetime as dt

    conversation = customer_writes(world.tenant_a, "¿Siguen abiertos?")
    with tenant_context(world.tenant_a):
        Conversation.objects.filter(pk=conversation.pk).update(
            last_message_at=timezone.now() - dt.timedelta(hours=5, minutes=10)
        )
    staff = logged_in(world.staff_a)

    def when(language: str) -> str:
        page = staff.get("/inbox/", HTTP_ACCEPT_LANGUAGE=language).content.decode()
        row = re.search(rf'data-conversation="{conversation.pk}".*?</tr>', page, re.S)[0]
        return re.search(r"<time [^>]*>([^<]+)</time>", row)[1].replace("\xa0", " ")

    assert when("en") == "5 hours ago"
    assert when("es") == "hace 5 horas"


def test_the_inbox_shows_every_conversation_a_page_at_a_time(world):
    from apps.conversations.views.inbox import PAGE_SIZE

    total = PAGE_SIZE + 7
    for n in range(total):
        customer_writes(world.tenant_a, f"Hola {n}", wa_id=f"3460000{n:04d}@c.us")
    staff = logged_in(world.staff_a)

    def rows(page: str, **headers: str) -> tuple[list[str], str]:
        html = staff.get(f"/inbox/?mode=bot&page={page}", **headers).content.decode()
        return re.findall(r"<td>Hola (\d+)</td>", html), html

    first, html = rows("1")
    assert first == [str(n) for n in range(total - 1, total - 1 - PAGE_SIZE, -1)]  # newest first
    assert "Page 1 of 2" in html
    assert 'href="?mode=bot&amp;page=2"' in html  # the filters stay on the next page
    second, html = rows("2")
    assert second == [str(n) for n in range(6, -1, -1)]
    # The rows refresh themselves on the page shown; the pager is not part of them.
    assert 'hx-get="/inbox/?mode=bot&amp;page=2"' in html
    refreshed, partial = rows("2", HTTP_HX_REQUEST="true")
    assert refreshed == second and "pager" not in partial
    assert rows("99")[0] == second  # past the end: the last page


def test_a_conversation_is_given_to_a_team_member_and_found_by_them(world):
    conversation = customer_writes(world.tenant_a, "Quiero un presupuesto", wa_id="777@c.us")
    with tenant_context(world.tenant_a):
        staff_user = User.objects.get(email=world.staff_a.email)
        gone = User.objects.create(email="antigua@alpha.test", role="staff", is_active=False)
    owner = logged_in(world.owner_a)
    page = owner.get(f"/inbox/{conversation.pk}/").content.decode()
    assert f'<option value="{staff_user.pk}">' in page and "antigua@alpha.test" not in page

    owner.post(f"/inbox/{conversation.pk}/assign/", {"assignee": str(staff_user.pk)})
    staff = logged_in(world.staff_a)
    mine = staff.get("/inbox/?assigned=me").content.decode()
    assert f'data-conversation="{conversation.pk}"' in mine
    assert (
        f'data-conversation="{conversation.pk}"'
        not in owner.get("/inbox/?assigned=me").content.decode()
    )
    thread = staff.get(f"/inbox/{conversation.pk}/", HTTP_ACCEPT_LANGUAGE="es").content.decode()
    assert f"Asignada a {world.staff_a.email} por {world.owner_a.email}" in thread

    for wrong in (str(gone.pk), "abc"):
        refused = owner.post(f"/inbox/{conversation.pk}/assign/", {"assignee": wrong}, follow=True)
        assert "Choose an active member of your team." in refused.content.decode()
    with tenant_context(world.tenant_a):  # still hers
        assert Conversation.objects.get(pk=conversation.pk).assigned_to_id == staff_user.pk
    owner.post(f"/inbox/{conversation.pk}/assign/", {"assignee": ""})
    assert (
        f'data-conversation="{conversation.pk}"'
        in owner.get("/inbox/?assigned=nobody").content.decode()
    )

    # The API: to the staff member, then a user id of nobody in this tenant.
    api = owner.post(
        f"/api/v1/conversations/{conversation.pk}/assign/",
        {"user_id": staff_user.pk},
        content_type="application/json",
    )
    assert api.status_code == 200 and api.json()["assigned_to"] == world.staff_a.email
    unknown = owner.post(
        f"/api/v1/conversations/{conversation.pk}/assign/",
        {"user_id": 999999},
        content_type="application/json",
    )
    assert unknown.status_code == 400
    # Tenant B cannot give A's conversation to anyone.
    other = logged_in(world.owner_b).post(
        f"/api/v1/conversations/{conversation.pk}/assign/",
        {"user_id": None},
        content_type="application/json",
    )
    assert other.status_code == 404
    with tenant_context(world.tenant_a):
        assert Conversation.objects.get(pk=conversation.pk).assigned_to_id == staff_user.pk
