"""The menu marks the section of the page shown (aria-current), and only that one."""

from __future__ import annotations

import re

import pytest

from apps.conversations.tests.test_inbox import logged_in

CURRENT = re.compile(r'<a href="([^"]+)"[^>]*aria-current="page"')
pytestmark = pytest.mark.django_db

MENU = re.compile(r'<nav class="mainnav".*?</nav>', re.S)


def current_sections(client, path: str) -> list[str]:
    response = client.get(path)
    assert response.status_code == 200, path
    menu = MENU.search(response.content.decode())
    assert menu, path
    return CURRENT.findall(menu.group())


@pytest.mark.parametrize(
    ("path", "section"),
    [
        ("/", "/"),
        ("/agents/", "/agents/"),
        ("/agents/new/", "/agents/"),
        ("/knowledge/", "/knowledge/"),
        ("/inbox/", "/inbox/"),
        ("/leads/", "/leads/"),
        ("/whatsapp/", "/whatsapp/"),
        ("/usage/", "/usage/"),
        ("/settings/team/", "/settings/team/"),
        ("/settings/api-tokens/", "/settings/api-tokens/"),
        ("/settings/webhooks/", "/settings/api-tokens/"),
        ("/settings/password/", None),
    ],
)
def test_the_menu_marks_the_section_shown(world, path: str, section: str | None):
    client = logged_in(world.owner_a)
    assert current_sections(client, path) == ([section] if section else [])


def test_sales_staff_menu_marks_its_sections_too(world):
    client = logged_in(world.staff_a)
    assert current_sections(client, "/inbox/") == ["/inbox/"]
    assert current_sections(client, "/") == ["/"]
