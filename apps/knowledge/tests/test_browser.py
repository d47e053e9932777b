"""The knowledge page in a real browser: several files at once, live status through HTMX polling
(no reload) while the real worker ingests them, delete without a reload."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from apps.knowledge.tests import files

pytestmark = [pytest.mark.django_db, pytest.mark.browser]


def test_upload_several_files_and_watch_them_become_ready(
    page, live_server_port, world, celery_worker, http_a, tmp_path
):
    base = f"http://{world.owner_a.host}:{live_server_port}"
    page.goto(f"{base}/knowledge/")
    page.fill("#id_username", world.owner_a.email)
    page.fill("#id_password", world.owner_a.password)
    page.click("button[type=submit]")
    expect(page).to_have_url(re.compile(r"/knowledge/$"))
    expect(page.locator("h1")).to_have_text("Knowledge")

    markdown = tmp_path / "tallas.md"
    markdown.write_bytes(files.MARKDOWN)
    csv = tmp_path / "precios.csv"
    csv.write_bytes(files.CSV)
    # The file input covers the drop zone: a drop and a pick both land in it; picking submits.
    page.set_input_files("#id_files", [str(markdown), str(csv)])
    expect(page.locator(".messages")).to_contain_text("tallas.md uploaded; processing")
    rows = page.locator("#document-rows tr")
    expect(rows).to_have_count(2)
    page.evaluate("window.__marker = 'same page'")  # proves no reload happens below

    ready = page.locator('#document-rows [data-status="ready"]')
    expect(ready).to_have_count(2, timeout=120_000)
    assert page.evaluate("window.__marker") == "same page"
    expect(page.locator("#document-rows")).not_to_have_attribute("hx-trigger", "every 2s")

    page.fill("#id_q", "¿qué talla necesito si mido 170 cm?")
    page.click("form[role=search] button")
    expect(page.locator("#search-results")).to_contain_text("Talla: M")

    page.on("dialog", lambda dialog: dialog.accept())
    row = page.locator("#document-rows tr", has_text="tallas")
    row.get_by_role("button", name="Delete").click()
    expect(rows).to_have_count(1)
    expect(page.locator("#document-rows")).to_contain_text("precios")
