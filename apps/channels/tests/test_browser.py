"""The WhatsApp numbers page in a real browser: connecting a number shows the gateway's QR as it
arrives and replaces it with the connected number, through HTMX polling alone."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import pytest
from playwright.sync_api import expect

from apps.channels import services
from apps.channels.models import WhatsAppSession
from apps.channels.tests.conftest import committed, in_alpha
from apps.tenants.models import WhatsAppSessionIndex

pytestmark = [pytest.mark.django_db, pytest.mark.browser]


def test_owner_connects_a_number_and_watches_the_qr_then_the_connection(
    page, live_server_port, world, streams
):
    page.goto(f"http://alpha.localhost:{live_server_port}/login/?next=/whatsapp/")
    page.fill("#id_username", world.owner_a.email)
    page.fill("#id_password", world.owner_a.password)
    page.click("button[type=submit]")
    expect(page.locator("h1")).to_have_text("WhatsApp numbers")
    page.fill("#id_label", "Browser number")
    page.click("text=Connect a number")
    expect(page).to_have_url(re.compile(r"/whatsapp/\d+/$"))
    expect(page.locator("#session-status")).to_contain_text("Waiting for the gateway")

    session = in_alpha(world, lambda: WhatsAppSession.objects.get(label="Browser number"))
    try:
        t0 = datetime.now(UTC)
        for attempt, code in enumerate(("2@first-qr", "2@second-qr"), start=1):
            in_alpha(
                world,
                lambda code=code, attempt=attempt: services.whatsapp_session_qr_apply(
                    session_id=session.session_id,
                    qr=code,
                    attempt=attempt,
                    gateway_id="gw-1",
                    ts=t0 + timedelta(seconds=attempt),
                ),
            )
            # The panel polls by itself: the new QR appears without a reload.
            expect(page.locator(f'#qr[data-attempt="{attempt}"] svg')).to_be_visible()

        in_alpha(
            world,
            lambda: services.whatsapp_session_status_apply(
                session_id=session.session_id,
                status="ready",
                wa_state="CONNECTED",
                reason=None,
                phone="5215500000077",
                gateway_id="gw-1",
                ts=t0 + timedelta(seconds=10),
            ),
        )
        expect(page.locator("#session-status .phone")).to_have_text("+5215500000077")
        expect(page.locator("#qr")).to_have_count(0)
        expect(page.locator("#session-status")).to_contain_text("Connected")
    finally:

        def clean() -> None:
            WhatsAppSessionIndex.objects.filter(session_id=session.session_id).delete()

        in_alpha(world, lambda: WhatsAppSession.objects.filter(pk=session.pk).delete())
        committed(clean)
