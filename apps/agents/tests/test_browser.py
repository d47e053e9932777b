"""In a real browser: the chat simulator answers through the worker, and the inbox updates live
(HTMX polling), with take over and a staff reply — tenant B's browser sees none of it."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from apps.agents.tests.conftest import (
    agent_create_for,
    customer_writes,
    document_ready,
    logged_in,
)
from apps.agents.tests.test_reply_pipeline import CATALOGUE

pytestmark = [pytest.mark.browser]


def log_in(page, port: int, persona) -> None:
    page.goto(f"http://{persona.host}:{port}/login/")
    page.fill("#id_username", persona.email)
    page.fill("#id_password", persona.password)
    page.click("button[type=submit]")
    expect(page.locator(".who")).to_contain_text(persona.email)


def test_simulator_and_live_inbox_in_the_browser(
    page, live_server_port, world, committed, celery_worker
):
    document_ready(world.tenant_a, logged_in(world.owner_a), "sofas.txt", CATALOGUE)
    agent = agent_create_for(world.tenant_a, greeting="¡Hola! Soy Sofía.")
    base = f"http://alpha.localhost:{live_server_port}"
    log_in(page, live_server_port, world.owner_a)

    page.click(".mainnav >> text=Agents")
    page.click(f"a[href='/agents/{agent.pk}/simulator/']")
    expect(page.locator("#sim-thread")).to_contain_text("¡Hola! Soy Sofía.")
    page.fill("#sim-text", "¿Cuánto cuesta el sofá Oslo?")
    page.click("#sim-form button[type=submit]")
    expect(page.locator("#sim-text")).to_have_value("")
    bot = page.locator("#sim-thread .msg-bot").first
    expect(bot).to_contain_text("899 euros", timeout=30000)
    expect(bot.locator(".citations")).to_contain_text("sofas.txt")
    expect(bot.locator(".meta-model")).to_contain_text("local-extractive")
    expect(bot.locator(".meta-latency")).to_contain_text(re.compile(r"\d+ ms"))

    # A WhatsApp customer writes; the inbox shows it without a reload, then the thread.
    page.goto(f"{base}/inbox/")
    record = customer_writes(
        world.tenant_a, "¿Hacen envíos a Madrid?", wa_id="34611000111@c.us", schedule=False
    )
    row = page.locator(f"tr[data-conversation='{record.conversation.pk}']")
    expect(row).to_contain_text("¿Hacen envíos a Madrid?", timeout=15000)
    row.locator("a").click()
    expect(page.locator("#conversation-mode")).to_have_text("Bot")
    customer_writes(world.tenant_a, "¿Y a Toledo?", wa_id="34611000111@c.us", schedule=False)
    expect(page.locator("#thread")).to_contain_text("¿Y a Toledo?", timeout=15000)
    page.click("#btn-takeover")
    expect(page.locator("#conversation-mode")).to_have_text("Human")
    page.fill("#staff-reply textarea", "Sí, a Toledo cuesta 39 euros.")
    page.click("#staff-reply button[type=submit]")
    expect(page.locator("#thread .msg-staff")).to_contain_text("Sí, a Toledo cuesta 39 euros.")
    page.fill("#lead-form #id_email", "cliente@example.com")
    page.select_option("#lead-form #id_stage", "qualified")
    page.click("#lead-form button[type=submit]")
    expect(page.locator("#lead-form .saved")).to_be_visible()

    # Tenant B's owner, in the same browser: nothing of A's.
    page.context.clear_cookies()
    log_in(page, live_server_port, world.owner_b)
    page.goto(f"http://beta.localhost:{live_server_port}/inbox/")
    expect(page.locator("#inbox-rows")).to_contain_text("No conversations match.")
    response = page.goto(
        f"http://beta.localhost:{live_server_port}/inbox/{record.conversation.pk}/"
    )
    assert response.status == 404
