"""Erasing a customer (a data-protection request): contact, conversations, messages and the
files only they used are gone; everyone else's data stays; only owners and admins of the
customer's own tenant can do it."""

from __future__ import annotations

import pytest
from django_tenants.utils import tenant_context

from apps.conversations.models import Contact, Conversation, Message
from apps.conversations.tests.test_inbox import logged_in
from apps.conversations.tests.test_media_view import OGG, customer_sends, put

pytestmark = pytest.mark.django_db

SHARED = "alpha/outbound/2026/11/" + "b" * 64 + ".png"


@pytest.fixture
def two_customers(world, settings, tmp_path):
    """Customer X (a voice note only they sent, a picture also in Y's chat) and customer Y."""
    settings.MEDIA_ROOT = tmp_path
    own = "alpha/whatsapp/s1/2026/11/" + "a" * 64 + ".ogg"
    put(tmp_path, own, OGG)
    put(tmp_path, SHARED, b"\x89PNG\r\n\x1a\n" + bytes(40))
    x = "34600000001@c.us"
    note = customer_sends(world.tenant_a, kind="audio", ref=own, mime="audio/ogg", wa_id=x)
    customer_sends(world.tenant_a, kind="image", ref=SHARED, mime="image/png", wa_id=x)
    other = customer_sends(
        world.tenant_a, kind="image", ref=SHARED, mime="image/png", wa_id="34600000002@c.us"
    )
    return tmp_path, own, note, other


def test_an_owner_erases_a_customer_and_only_their_files(
    world, two_customers, django_capture_on_commit_callbacks
):
    root, own, note, other = two_customers
    staff = logged_in(world.staff_a)
    assert staff.post(f"/inbox/{note.conversation_id}/erase/").status_code == 403
    assert logged_in(world.owner_b).post(f"/inbox/{note.conversation_id}/erase/").status_code == 404
    with tenant_context(world.tenant_a):
        contact_id = Conversation.objects.get(pk=note.conversation_id).contact_id
        assert Message.objects.filter(conversation__contact_id=contact_id).count() == 2

    owner = logged_in(world.owner_a)
    thread = owner.get(f"/inbox/{note.conversation_id}/").content.decode()
    assert f'action="/inbox/{note.conversation_id}/erase/"' in thread
    with django_capture_on_commit_callbacks(execute=True):
        erased = owner.post(f"/inbox/{note.conversation_id}/erase/", follow=True)
    assert "Customer erased: 1 conversation, 2 messages." in erased.content.decode()

    with tenant_context(world.tenant_a):
        assert not Contact.objects.filter(pk=contact_id).exists()
        assert not Conversation.objects.filter(contact_id=contact_id).exists()
        assert not Message.objects.filter(pk=note.pk).exists()
        assert Message.objects.filter(pk=other.pk).exists()  # customer Y keeps everything
    assert not (root / own).exists()  # only X's: deleted
    assert (root / SHARED).exists()  # also in Y's chat: kept
    assert owner.get(f"/inbox/{note.conversation_id}/").status_code == 404


def test_the_api_erases_a_customer_for_owners_only(
    world, two_customers, django_capture_on_commit_callbacks
):
    root, own, note, _other = two_customers
    with tenant_context(world.tenant_a):
        contact_id = Conversation.objects.get(pk=note.conversation_id).contact_id
    refused = logged_in(world.staff_a).delete(f"/api/v1/contacts/{contact_id}/")
    assert refused.status_code == 403 and refused.json()["error"]["code"] == "permission_denied"
    assert logged_in(world.owner_b).delete(f"/api/v1/contacts/{contact_id}/").status_code == 404
    owner = logged_in(world.owner_a)
    with django_capture_on_commit_callbacks(execute=True):
        assert owner.delete(f"/api/v1/contacts/{contact_id}/").status_code == 204
    assert owner.get(f"/api/v1/contacts/{contact_id}/").status_code == 404
    assert not (root / own).exists()


def test_erasure_takes_the_tenants_dead_letters_that_hold_what_the_customer_wrote(
    world, two_customers
):
    import json

    from apps.ops.models import DeadLetter
    from apps.ops.services import dead_letter_record

    _root, _own, note, _other = two_customers

    def buried(schema: str, wa_id: str, text: str, source: str = "stream") -> int:
        event = {"type": "message", "from": wa_id, "text": text, "tenant_schema": schema}
        payload = (
            {"stream": "eva:inbound", "entry_id": "1-0", "fields": {"event": json.dumps(event)}}
            if source == "stream"
            else {"args": [note.pk], "kwargs": {}}
        )
        return dead_letter_record(
            source=source, name="consume_inbound.message", payload=payload,
            tenant_schema=schema, error="boom", attempts=5,
        ).pk  # fmt: skip

    theirs = buried("alpha", "34600000001@c.us", "Mi DNI es 12345678Z")
    someone_else = buried("alpha", "134600000001@c.us", "Otro cliente")  # the id inside another
    other_customer = buried("alpha", "34600000002@c.us", "Hola")
    other_tenant = buried("beta", "34600000001@c.us", "Hola Beta")
    task = buried("alpha", "", "", source="task")

    with tenant_context(world.tenant_a):
        contact_id = Conversation.objects.get(pk=note.conversation_id).contact_id
    owner = logged_in(world.owner_a)
    assert owner.delete(f"/api/v1/contacts/{contact_id}/").status_code == 204

    left = set(DeadLetter.objects.values_list("pk", flat=True))
    assert theirs not in left
    assert {someone_else, other_customer, other_tenant, task} <= left
