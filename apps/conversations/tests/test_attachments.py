"""Staff send a file to a customer (dashboard and API): the type told from the bytes, stored
once under the tenant's prefix, sent as the gateway's ``send_media`` command; bad files refused
with a clear message and nothing stored; tenant B cannot send into tenant A's conversations."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client
from django_tenants.utils import tenant_context

from apps.conversations.models import Message
from apps.conversations.tests.test_inbox import customer_writes, logged_in
from apps.conversations.tests.test_media_view import png

pytestmark = pytest.mark.django_db

PDF = b"%PDF-1.4\n1 0 obj <<>> endobj\ntrailer <<>>\n%%EOF\n"


@pytest.fixture
def media_root(settings, tmp_path) -> Path:
    settings.MEDIA_ROOT = tmp_path
    return tmp_path


def stored_files(root: Path) -> list[Path]:
    return sorted(path for path in root.rglob("*") if path.is_file())


def api_client(persona) -> Client:
    key = (
        logged_in(persona)
        .post("/api/v1/tokens/", {"name": "crm"}, content_type="application/json")
        .json()["key"]
    )
    return Client(HTTP_HOST=persona.host, HTTP_AUTHORIZATION=f"Bearer {key}")


def test_staff_send_a_picture_with_a_caption_from_the_inbox(
    world, media_root, django_capture_on_commit_callbacks
):
    conversation = customer_writes(world.tenant_a, "¿Me mandas una foto del sofá?")
    picture = png(4, 3)
    staff = logged_in(world.staff_a)

    with django_capture_on_commit_callbacks() as delivered:
        response = staff.post(
            f"/inbox/{conversation.pk}/reply/",
            {
                "text": "Así es en gris perla.",
                "attachment": SimpleUploadedFile("Sofá <Oslo>.png", picture, "image/png"),
            },
        )
    assert response.status_code == 302
    with tenant_context(world.tenant_a):
        sent = Message.objects.get(conversation=conversation, sender="staff")
    digest = hashlib.sha256(picture).hexdigest()
    assert (sent.kind, sent.text, sent.status) == ("image", "Así es en gris perla.", "queued")
    assert sent.media["ref"].startswith("alpha/outbound/") and sent.media["ref"].endswith(
        f"/{digest}.png"
    )
    assert sent.media | {"ref": ""} == {
        "ref": "",
        "mime": "image/png",
        "size": len(picture),
        "sha256": digest,
        "filename": "Sofá _Oslo.png",
    }
    assert (media_root / sent.media["ref"]).read_bytes() == picture
    assert len(delivered) == 1  # the delivery task is queued once the reply is committed

    # The same picture again is stored once.
    staff.post(
        f"/inbox/{conversation.pk}/reply/",
        {"attachment": SimpleUploadedFile("again.png", picture, "image/png")},
    )
    assert stored_files(media_root) == [media_root / sent.media["ref"]]


def test_the_gateway_command_carries_the_files_reference(world, media_root, settings):
    """Delivery (apps.channels) turns the message into ``send_media``: the key and sha256 the
    gateway checks before sending, a PDF as a document, an Ogg file as a voice note."""
    import redis

    from apps.channels import contract, services
    from apps.channels.models import WhatsAppSession
    from apps.conversations.services import staff_message_send

    client = redis.Redis.from_url(str(settings.REDIS_URL), decode_responses=True)
    with tenant_context(world.tenant_a):
        session = services.whatsapp_session_create(label="Files")
        conversation = customer_writes(world.tenant_a, "¿Tienen catálogo?", wa_id="521@c.us")
        type(conversation).objects.filter(pk=conversation.pk).update(channel_ref=session.session_id)
        user = world_user(world)
        commands = []
        for name, data in (("catálogo.pdf", PDF), ("nota.ogg", b"OggS\x00\x02" + bytes(300))):
            message = staff_message_send(
                conversation_id=conversation.pk,
                author=user,
                text="",
                attachment=SimpleUploadedFile(name, data),
                attachment_name=name,
            )
            event_id = services.message_deliver(message_id=message.pk)
            stream = contract.outbound_stream(session.session_id)
            entries = client.xrange(stream)
            commands += [json.loads(fields["event"]) for _id, fields in entries]
            assert commands[-1]["event_id"] == event_id
        WhatsAppSession.objects.filter(pk=session.pk).delete()
    client.delete(contract.outbound_stream(session.session_id))

    pdf, note = commands[-2], commands[-1]
    assert pdf["type"] == "send_media" and pdf["as_document"] is True
    assert pdf["media"]["sha256"] == hashlib.sha256(PDF).hexdigest()
    assert pdf["media"]["filename"] == "catálogo.pdf" and pdf["media"]["mime"] == "application/pdf"
    assert (media_root / pdf["media"]["key"]).read_bytes() == PDF
    assert note["as_voice"] is True and note["media"]["mime"] == "audio/ogg"


def world_user(world):
    from apps.accounts.models import User

    return User.objects.get(email=world.staff_a.email)


@pytest.mark.parametrize(
    ("name", "data", "message"),
    [
        ("setup.exe", b"MZ\x90\x00" + bytes(100), "This type of file cannot be sent."),
        ("page.html", b"<html><script>x</script></html>", "This type of file cannot be sent."),
        ("fake.pdf", b"just text named as a PDF", "This type of file cannot be sent."),
        ("datos.csv", b"a,b\n" + bytes(range(40)), "This type of file cannot be sent."),
        ("empty.pdf", b"", "file is empty."),
        ("big.pdf", PDF + bytes(1_200_000), "The file is 1.2 MB; the limit is 1.0 MB."),
    ],
)
def test_bad_files_are_refused_and_nothing_is_stored(
    world, media_root, settings, name, data, message
):
    settings.EVA_OUTBOUND_MEDIA_MAX_BYTES = 1_000_000
    conversation = customer_writes(world.tenant_a, "Hola")
    api = api_client(world.owner_a)

    response = api.post(
        f"/api/v1/conversations/{conversation.pk}/messages/",
        {"text": "Mira", "file": SimpleUploadedFile(name, data)},
    )

    assert response.status_code == 400, response.content
    assert message in json.dumps(response.json(), ensure_ascii=False)
    assert stored_files(media_root) == []
    with tenant_context(world.tenant_a):
        assert not Message.objects.filter(conversation=conversation, sender="staff").exists()


def test_the_api_sends_a_document_and_tenant_b_cannot(world, media_root):
    conversation = customer_writes(world.tenant_a, "¿Precios?")
    sent = api_client(world.owner_a).post(
        f"/api/v1/conversations/{conversation.pk}/messages/",
        {"file": SimpleUploadedFile("precios 2026.pdf", PDF)},
    )
    assert sent.status_code == 201, sent.content
    body = sent.json()
    assert body["kind"] == "document" and body["text"] == ""
    assert body["media"]["filename"] == "precios 2026.pdf"

    refused = api_client(world.owner_b).post(
        f"/api/v1/conversations/{conversation.pk}/messages/",
        {"file": SimpleUploadedFile("x.pdf", PDF + b"b")},
    )
    assert refused.status_code == 404
    assert stored_files(media_root) == [media_root / body["media"]["ref"]]

    nothing = api_client(world.owner_a).post(
        f"/api/v1/conversations/{conversation.pk}/messages/", {"text": "  "}
    )
    assert nothing.status_code == 400 and "Write a message first." in nothing.content.decode()


def test_the_inbox_says_why_a_file_was_refused_in_the_users_language(world, media_root):
    conversation = customer_writes(world.tenant_a, "Hola")
    staff = logged_in(world.staff_a)

    page = staff.post(
        f"/inbox/{conversation.pk}/reply/",
        {"text": "Mira", "attachment": SimpleUploadedFile("virus.exe", b"MZ" + bytes(64))},
        HTTP_ACCEPT_LANGUAGE="es",
        follow=True,
    ).content.decode()

    assert "Este tipo de archivo no se puede enviar." in page
    assert 'enctype="multipart/form-data"' in page
    assert stored_files(media_root) == []
    with tenant_context(world.tenant_a):
        assert not Message.objects.filter(conversation=conversation, sender="staff").exists()


def test_a_csv_from_excel_in_windows_1252_is_sent_as_a_document(world, media_root):
    conversation = customer_writes(world.tenant_a, "¿Lista de precios?")
    data = "Artículo;Precio\nSofá Oslo;1.200,00\n".encode("cp1252")
    sent = api_client(world.owner_a).post(
        f"/api/v1/conversations/{conversation.pk}/messages/",
        {"text": "La lista", "file": SimpleUploadedFile("precios.csv", data)},
    )
    assert sent.status_code == 201, sent.content
    media = sent.json()["media"]
    assert (media["mime"], media["filename"]) == ("text/csv", "precios.csv")
    assert (media_root / media["ref"]).read_bytes() == data


def test_a_bucket_that_does_not_answer_is_said_and_nothing_is_half_done(world, s3_media, settings):
    """The bucket unreachable: the API answers 503 with the reason, the inbox says it, the
    file view answers 503, and no message is stored for a file that is not there."""
    import socket

    server, bucket = s3_media
    server.client().put_object(Bucket=bucket, Key="alpha/whatsapp/s/n.ogg", Body=b"OggS" + bytes(9))
    note = customer_sends_note(world, "alpha/whatsapp/s/n.ogg")
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        closed = sock.getsockname()[1]  # nothing listens there once the socket is closed
    settings.EVA_S3_ENDPOINT_URL = f"http://127.0.0.1:{closed}"
    conversation_id = note.conversation_id

    api = api_client(world.owner_a)
    refused = api.post(
        f"/api/v1/conversations/{conversation_id}/messages/",
        {"file": SimpleUploadedFile("precios.pdf", PDF)},
    )
    assert refused.status_code == 503, refused.content
    assert refused.json()["error"]["code"] == "unavailable"
    assert "media storage is not answering" in refused.json()["error"]["message"]

    page = logged_in(world.staff_a).post(
        f"/inbox/{conversation_id}/reply/",
        {"attachment": SimpleUploadedFile("precios.pdf", PDF)},
        follow=True,
    )
    assert "The file could not be stored: the media storage is not answering." in (
        page.content.decode()
    )
    with tenant_context(world.tenant_a):
        assert not Message.objects.filter(conversation_id=conversation_id, sender="staff").exists()

    shown = logged_in(world.staff_a).get(f"/inbox/{conversation_id}/media/{note.pk}/")
    assert shown.status_code == 503


def customer_sends_note(world, ref: str) -> Message:
    from apps.conversations.tests.test_media_view import customer_sends

    return customer_sends(world.tenant_a, kind="audio", ref=ref, mime="audio/ogg")


def test_a_refusal_shows_in_the_thread_the_htmx_form_swaps_in(world, media_root):
    """The inbox form posts with HTMX and swaps the thread in: the reason must be in that
    answer, not only on the next full page."""
    conversation = customer_writes(world.tenant_a, "Hola")
    staff = logged_in(world.staff_a)
    swapped = staff.post(
        f"/inbox/{conversation.pk}/reply/",
        {"attachment": SimpleUploadedFile("virus.exe", b"MZ" + bytes(64))},
        HTTP_HX_REQUEST="true",
    ).content.decode()
    assert "<html" not in swapped
    assert swapped.count("This type of file cannot be sent.") == 1
    # Shown once: the next page does not repeat it.
    assert (
        "This type of file cannot be sent."
        not in staff.get(f"/inbox/{conversation.pk}/").content.decode()
    )
