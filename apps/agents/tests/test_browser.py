"""In a real browser: the chat simulator answers through the worker, and the inbox updates live
(HTMX polling), with take over and a staff reply — tenant B's browser sees none of it."""

from __future__ import annotations

import re

import pytest
from django_tenants.utils import tenant_context
from playwright.sync_api import expect

from apps.agents.tests.conftest import (
    agent_create_for,
    customer_writes,
    document_ready,
    logged_in,
)
from apps.agents.tests.test_reply_pipeline import CATALOGUE
from apps.conversations.models import Message
from conftest import CHROMIUM

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
    # Given to a salesperson from the side panel: the thread notes it without a reload.
    page.select_option("#assignee", label=world.staff_a.email)
    expect(page.locator("#thread")).to_contain_text(
        f"Assigned to {world.staff_a.email} by {world.owner_a.email}"
    )

    # Tenant B's owner, in the same browser: nothing of A's.
    page.context.clear_cookies()
    log_in(page, live_server_port, world.owner_b)
    page.goto(f"http://beta.localhost:{live_server_port}/inbox/")
    expect(page.locator("#inbox-rows")).to_contain_text("No conversations match.")
    response = page.goto(
        f"http://beta.localhost:{live_server_port}/inbox/{record.conversation.pk}/"
    )
    assert response.status == 404


SPOKEN_QUESTION = "Buenos días, necesito saber el precio del sofá Oslo."


def test_simulator_voice_notes_sent_as_a_file_and_recorded_in_the_browser(
    browser, page, live_server_port, world, committed, celery_worker, tmp_path
):
    """The simulator's customer sends a voice note — an audio file, then one recorded with the
    browser's microphone (Chromium's fake capture device playing real speech) — and each goes
    the WhatsApp way: stored, transcribed by the worker's faster-whisper, answered."""
    from apps.speech.tests.audio import encode, speech

    document_ready(world.tenant_a, logged_in(world.owner_a), "sofas.txt", CATALOGUE)
    agent = agent_create_for(world.tenant_a)
    spoken = speech(tmp_path, SPOKEN_QUESTION, language="es", fmt="ogg")

    log_in(page, live_server_port, world.owner_a)
    page.goto(f"http://alpha.localhost:{live_server_port}/agents/{agent.pk}/simulator/")
    page.set_input_files("#sim-audio", str(spoken))  # sent when chosen
    note = page.locator("#sim-thread .msg-customer").first
    expect(note.locator("audio")).to_have_count(1)
    expect(note.locator(".msg-transcript")).to_contain_text("precio", timeout=60000)
    expect(page.locator("#sim-thread .msg-bot").first).to_contain_text("899 euros", timeout=30000)
    with tenant_context(world.tenant_a):
        stored = Message.objects.get(conversation__channel="simulator", kind="audio")
    assert (
        stored.media["ref"].startswith("alpha/simulator/") and stored.media["mime"] == "audio/ogg"
    )

    # Not audio: refused in the thread, nothing stored.
    page.set_input_files(
        "#sim-audio", files=[{"name": "notes.txt", "mimeType": "text/plain", "buffer": b"hola"}]
    )
    expect(page.locator("#sim-thread .error")).to_contain_text("A voice note must be audio")
    with tenant_context(world.tenant_a):
        assert (
            Message.objects.filter(conversation__channel="simulator", sender="customer").count()
            == 1
        )

    # Recorded with the microphone: Chromium's fake device plays the same question (as WAV).
    wav = encode(spoken, tmp_path / "question.wav", fmt="wav")
    recording = browser.browser_type.launch(
        executable_path=CHROMIUM,
        args=[
            "--no-sandbox",
            "--disable-gpu",
            "--use-fake-ui-for-media-stream",
            "--use-fake-device-for-media-stream",
            f"--use-file-for-fake-audio-capture={wav}%noloop",
        ],
    )
    try:
        context = recording.new_context(locale="es-ES")
        context.grant_permissions(["microphone"])
        speaker = context.new_page()
        log_in(speaker, live_server_port, world.owner_a)
        speaker.goto(f"http://alpha.localhost:{live_server_port}/agents/{agent.pk}/simulator/")
        record = speaker.locator("#sim-record")
        expect(record).to_have_text("Grabar")
        record.click()
        expect(record).to_have_text("Detener y enviar")
        speaker.wait_for_timeout(4000)  # the question lasts about two seconds
        record.click()
        recorded = speaker.locator("#sim-thread .msg-customer").first
        expect(recorded.locator(".msg-transcript")).to_contain_text("precio", timeout=60000)
        expect(speaker.locator("#sim-thread .msg-bot").first).to_contain_text(
            "899 euros", timeout=30000
        )
    finally:
        recording.close()
    with tenant_context(world.tenant_a):
        webm = Message.objects.filter(conversation__channel="simulator", kind="audio").last()
    assert webm.media["mime"] == "audio/webm" and webm.media["ref"].endswith(".webm")
