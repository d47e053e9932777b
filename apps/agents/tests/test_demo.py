"""`manage.py seed_demo` gives the demo tenant a ready agent and a price list, idempotently."""

from __future__ import annotations

from io import StringIO

import pytest
from django.core.management import call_command
from django_tenants.utils import schema_context

from apps.agents.models import Agent

pytestmark = pytest.mark.django_db


def seed() -> str:
    out = StringIO()
    call_command("seed_demo", stdout=out)
    return out.getvalue()


@pytest.fixture
def media_root(tmp_path):
    """Files go to a temporary folder; the storage's cached root is reset on the way in and out
    (django-tenants' storage does not notice MEDIA_ROOT changing)."""
    from django.test import override_settings

    from apps.agents.tests.conftest import forget_media_root

    with override_settings(MEDIA_ROOT=tmp_path):
        forget_media_root()
        yield tmp_path
    forget_media_root()


def test_seed_demo_creates_the_demo_agent_and_price_list_once(world, media_root):
    first = seed()
    assert "login:    owner@demo.example.com" in first
    assert "Created demo agent 'Eva' and its price list" in first
    assert "/agents/" in first and "/simulator/" in first
    second = seed()
    assert "Kept demo tenant" in second and "Kept demo agent 'Eva'." in second
    from apps.knowledge.models import Document

    with schema_context("demo"):
        agent = Agent.objects.get()
        assert agent.is_default and agent.is_active and "share_prices" in agent.sales_goals
        document = Document.objects.get()
        assert document.title == "Catálogo y precios (demo)"
    with schema_context("alpha"):
        assert not Agent.objects.filter(name="Eva").exists()
