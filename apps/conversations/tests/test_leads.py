"""The leads page and its CSV: the tenant's real contacts, filtered, paged, exported safely, and
nothing of another tenant's."""

from __future__ import annotations

import csv
import datetime as dt
import io

import pytest
from django.utils import timezone, translation
from django_tenants.utils import tenant_context

from apps.conversations.models import Contact
from apps.conversations.services import inbound_message_record
from apps.conversations.tests.test_inbox import logged_in

pytestmark = pytest.mark.django_db


def lead_writes(tenant, wa_id: str, name: str, **fields: str):
    with tenant_context(tenant):
        record = inbound_message_record(
            channel="whatsapp",
            channel_ref="main",
            contact_wa_id=wa_id,
            contact_phone="+" + wa_id.split("@")[0],
            contact_name=name,
            external_id=f"wamid.lead.{wa_id}",
            kind="text",
            text="Hola",
            media=None,
            sent_at=timezone.now(),
        )
        if fields:
            Contact.objects.filter(pk=record.conversation.contact_id).update(**fields)
        return record


def test_staff_see_their_leads_filter_them_and_open_the_conversation(world):
    ana = lead_writes(
        world.tenant_a,
        "34600111222@c.us",
        "Ana Leads",
        email="ana@example.com",
        interest="sofá Oslo",
        budget="900 €",
        stage="qualified",
    )
    lead_writes(world.tenant_a, "34600333444@c.us", "Bruno Leads")
    lead_writes(world.tenant_b, "34600555666@c.us", "Beta Only Lead")
    staff = logged_in(world.staff_a)

    page = staff.get("/leads/").content.decode()
    assert "Ana Leads" in page and "Bruno Leads" in page and "Beta Only Lead" not in page
    assert f'href="/inbox/{ana.conversation.pk}/"' in page
    assert "ana@example.com" in page and "900 €" in page and "+34600111222" in page
    qualified = staff.get("/leads/?stage=qualified").content.decode()
    assert "Ana Leads" in qualified and "Bruno Leads" not in qualified
    searched = staff.get("/leads/?q=bruno").content.decode()
    assert "Bruno Leads" in searched and "Ana Leads" not in searched
    assert 'href="/leads/export.csv?q=bruno"' in searched  # the export keeps the filter

    other = logged_in(world.owner_b).get("/leads/").content.decode()
    assert "Beta Only Lead" in other and "Ana Leads" not in other


def test_the_csv_has_every_filtered_lead_and_no_formula(world):
    lead_writes(
        world.tenant_a,
        "34600777888@c.us",
        '=HYPERLINK("http://evil.example","Clic")',
        email="cliente@example.com",
        notes="-2+3",
        stage="won",
    )
    lead_writes(world.tenant_a, "34600999000@c.us", "Carmen Núñez")
    with tenant_context(world.tenant_a):
        Contact.objects.filter(phone="+34600999000").update(
            first_contact_at=dt.datetime(2026, 1, 15, 10, 5, tzinfo=dt.UTC)
        )
    owner = logged_in(world.owner_a)
    owner.cookies["eva_tz"] = "Europe/Madrid"
    response = owner.get("/leads/export.csv", HTTP_ACCEPT_LANGUAGE="es")
    assert response.status_code == 200
    assert response["Content-Type"] == "text/csv; charset=utf-8"
    assert 'filename="leads-' in response["Content-Disposition"]
    # Streamed after the view returned: the request's language and zone still apply.
    with translation.override("en"), timezone.override(dt.UTC):
        text = b"".join(response.streaming_content).decode("utf-8")
    assert text.startswith("\ufeff")
    rows = list(csv.reader(io.StringIO(text.lstrip("\ufeff"))))
    assert rows[0][:3] == ["Nombre", "Teléfono", "Correo electrónico"]
    by_phone = {row[1]: row for row in rows[1:]}
    evil = by_phone["+34600777888"]
    assert evil[0] == '\'=HYPERLINK("http://evil.example","Clic")'  # text, not a formula
    assert evil[-1] == "'-2+3" and evil[6] == "Ganado" and evil[2] == "cliente@example.com"
    assert by_phone["+34600999000"][0] == "Carmen Núñez"
    assert by_phone["+34600999000"][9] == "2026-01-15 11:05"  # Madrid
    # Filtered like the page.
    won = logged_in(world.owner_a).get("/leads/export.csv?stage=won")
    won_rows = list(
        csv.reader(io.StringIO(b"".join(won.streaming_content).decode().lstrip("\ufeff")))
    )
    assert [row[1] for row in won_rows[1:]] == ["+34600777888"]


def test_leads_are_paged(world):
    with tenant_context(world.tenant_a):
        Contact.objects.bulk_create(
            Contact(wa_id=f"3460{n:07d}@c.us", name=f"Paged {n:02d}", phone=f"+3460{n:07d}")
            for n in range(60)
        )
    owner = logged_in(world.owner_a)
    first = owner.get("/leads/?q=Paged").content.decode()
    assert "60 leads" in first and "Page 1 of 2" in first and 'href="?q=Paged&amp;page=2"' in first
    second = owner.get("/leads/?q=Paged&page=2").content.decode()
    assert second.count('<tr data-contact="') == 10
    assert owner.get("/leads/?page=99").status_code == 200  # past the end: the last page
