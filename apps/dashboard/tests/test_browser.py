"""The dashboard in a real browser: login, tenant isolation, i18n, HTMX token revocation."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

pytestmark = [pytest.mark.django_db, pytest.mark.browser]


def log_in(page, port: int, persona) -> None:
    page.goto(f"http://{persona.host}:{port}/")
    expect(page).to_have_url(re.compile(r"/login/\?next=/$"))
    page.fill("#id_username", persona.email)
    page.fill("#id_password", persona.password)
    page.click("button[type=submit]")


def test_owner_logs_in_and_sees_the_dashboard_in_english_and_spanish(page, live_server_port, world):
    # Nothing the pages ask for is missing (the icon included) and no script fails.
    problems: list[str] = []
    page.on("console", lambda message: message.type == "error" and problems.append(message.text))
    page.on("pageerror", lambda error: problems.append(str(error)))
    page.goto(f"http://alpha.localhost:{live_server_port}/")
    expect(page.locator("h1")).to_have_text("Log in to Alpha Store")
    # htmx is served by the app itself (no CDN): the script ran.
    assert page.evaluate("typeof window.htmx") == "object"

    page.fill("#id_username", world.owner_a.email)
    page.fill("#id_password", "wrong-password")
    page.click("button[type=submit]")
    expect(page.locator(".error")).to_contain_text("Please enter a correct")

    page.fill("#id_password", world.owner_a.password)
    page.click("button[type=submit]")
    expect(page.locator("h1")).to_have_text("Welcome to Alpha Store")
    expect(page.locator(".who")).to_contain_text("owner@alpha.test · Owner")

    page.select_option("select[name=language]", "es")
    expect(page.locator("h1")).to_have_text("Bienvenido a Alpha Store")
    expect(page.locator(".mainnav")).to_contain_text("Resumen")
    icon = page.evaluate("fetch(document.querySelector('link[rel=icon]').href).then(r => r.status)")
    assert icon == 200
    assert problems == []
    # The browser told the server its time zone (times are shown in it).
    zone = page.evaluate("Intl.DateTimeFormat().resolvedOptions().timeZone")
    cookies = {c["name"]: c["value"] for c in page.context.cookies()}
    assert cookies.get("eva_tz") == zone


def test_alpha_credentials_do_not_open_beta(page, live_server_port, world):
    persona = world.owner_a
    page.goto(f"http://beta.localhost:{live_server_port}/login/")
    expect(page.locator("h1")).to_have_text("Log in to Beta Shop")
    page.fill("#id_username", persona.email)
    page.fill("#id_password", persona.password)
    page.click("button[type=submit]")
    expect(page.locator(".error")).to_be_visible()
    expect(page).to_have_url(re.compile(r"/login/$"))


def test_owner_creates_a_token_shown_once_and_revokes_it_with_htmx(page, live_server_port, world):
    log_in(page, live_server_port, world.owner_a)
    page.click(".mainnav >> text=API")
    expect(page.locator("h1")).to_have_text("API tokens")
    page.fill("#id_name", "Browser test token")
    page.click("text=Create token")
    key = page.locator("#new-token code").inner_text()
    assert key.startswith("eva_")

    page.reload()
    expect(page.locator("#new-token")).to_have_count(0)
    assert key not in page.content()

    row = page.locator("tr", has_text="Browser test token").first
    page.once("dialog", lambda dialog: dialog.accept())
    row.locator("button", has_text="Revoke").click()
    expect(page.locator("tr", has_text="Browser test token").first).to_contain_text("revoked")


def test_staff_does_not_see_token_management(page, live_server_port, world):
    log_in(page, live_server_port, world.staff_a)
    expect(page.locator("h1")).to_have_text("Welcome to Alpha Store")
    # Staff's "API" is the documentation; neither tokens nor the team are theirs.
    expect(page.locator(".mainnav a", has_text="API")).to_have_attribute("href", "/api/docs/")
    expect(page.locator(".mainnav")).not_to_contain_text("Team")
    response = page.goto(f"http://alpha.localhost:{live_server_port}/settings/api-tokens/")
    assert response.status == 403


def test_the_pages_fit_a_phone_screen(page, live_server_port, world):
    """Sales staff answer from their phones: no page scrolls sideways at 390 px (wide lists
    scroll inside their own box)."""
    page.set_viewport_size({"width": 390, "height": 844})
    log_in(page, live_server_port, world.owner_a)
    for path in ("/", "/inbox/", "/leads/", "/knowledge/", "/usage/", "/settings/team/"):
        page.goto(f"http://alpha.localhost:{live_server_port}{path}")
        assert page.evaluate("document.documentElement.scrollWidth") <= 390, path
