"""Files customers send, seen from the thread: a voice note plays, a picture shows, anything else
downloads (never rendered as a page of the dashboard); read from the media storage (the local
folder or a bucket); tenant B and references outside the tenant's prefix get 404."""

from __future__ import annotations

import hashlib
import uuid
from pathlib import Path

import pytest
from django.test import Client
from django.utils import timezone
from django_tenants.utils import tenant_context

from apps.conversations.models import Message
from apps.conversations.services import inbound_message_record
from apps.conversations.tests.test_inbox import logged_in

pytestmark = pytest.mark.django_db

OGG = b"OggS\x00\x02" + bytes(range(200))


def customer_sends(
    tenant,
    *,
    kind: str,
    ref: str | None,
    mime: str = "",
    filename: str | None = None,
    wa_id: str | None = None,
    text: str = "",
    media_error: str = "",
):
    """A customer's message carrying the file at ``ref`` (``ref=None``: one whose file did not
    arrive, ``media_error`` saying why)."""
    media = None if ref is None else {"ref": ref, "mime": mime, "size": 206, "sha256": "0" * 64}
    if media is not None and filename:
        media["filename"] = filename
    with tenant_context(tenant):
        record = inbound_message_record(
            channel="whatsapp",
            channel_ref="main",
            contact_wa_id=wa_id or f"52155{uuid.uuid4().int % 10**8:08d}@c.us",
            contact_phone=None,
            contact_name="Ana",
            external_id=f"wamid.{uuid.uuid4().hex}",
            kind=kind,
            text=text,
            media=media,
            sent_at=timezone.now(),
            media_error=media_error,
        )
        return record.message


def put(root: Path, ref: str, data: bytes) -> None:
    target = root / ref
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_bytes(data)


def url(message: Message) -> str:
    return f"/inbox/{message.conversation_id}/media/{message.pk}/"


@pytest.fixture
def note(world, settings, tmp_path) -> Message:
    """A voice note of tenant A whose file is in a local media folder."""
    settings.MEDIA_ROOT = tmp_path
    ref = f"alpha/whatsapp/s1/2026/11/{hashlib.sha256(OGG).hexdigest()}.ogg"
    put(tmp_path, ref, OGG)
    return customer_sends(world.tenant_a, kind="audio", ref=ref, mime="audio/ogg; codecs=opus")


def test_a_voice_note_plays_in_the_thread(world, note):
    staff = logged_in(world.staff_a)

    thread = staff.get(f"/inbox/{note.conversation_id}/").content.decode()
    assert f'<audio controls preload="none" src="{url(note)}"' in thread

    response = staff.get(url(note))
    assert response.status_code == 200
    assert b"".join(response.streaming_content) == OGG
    assert response["Content-Type"] == "audio/ogg"
    assert not response["Content-Disposition"].startswith("attachment")
    assert response["Content-Security-Policy"].startswith("sandbox")

    # Tenant B's owner asks for the same conversation and message: not found.
    assert logged_in(world.owner_b).get(url(note)).status_code == 404
    # Signed out: the login page.
    assert Client(HTTP_HOST=world.staff_a.host).get(url(note)).status_code == 302


def test_a_document_is_downloaded_never_shown_as_a_page(world, settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path
    page = b"<html><script>alert(document.cookie)</script></html>"
    ref = f"alpha/whatsapp/s1/2026/11/{hashlib.sha256(page).hexdigest()}.bin"
    put(tmp_path, ref, page)
    document = customer_sends(
        world.tenant_a, kind="document", ref=ref, mime="text/html", filename="oferta.html"
    )
    staff = logged_in(world.staff_a)

    assert (
        "Download oferta.html" in staff.get(f"/inbox/{document.conversation_id}/").content.decode()
    )
    response = staff.get(url(document))
    assert response.status_code == 200
    assert response["Content-Type"] == "application/octet-stream"
    assert response["Content-Disposition"] == 'attachment; filename="oferta.html"'
    assert b"".join(response.streaming_content) == page


def test_missing_files_and_references_outside_the_tenant_are_not_found(world, settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path
    theirs = "beta/whatsapp/s9/2026/11/secret.ogg"
    put(tmp_path, theirs, OGG)  # tenant B's file, really there
    forged = customer_sends(world.tenant_a, kind="audio", ref=theirs, mime="audio/ogg")
    gone = customer_sends(
        world.tenant_a, kind="audio", ref="alpha/whatsapp/x/gone.ogg", mime="audio/ogg"
    )
    climbing = customer_sends(
        world.tenant_a,
        kind="audio",
        ref="alpha/../beta/whatsapp/s9/2026/11/secret.ogg",
        mime="audio/ogg",
    )
    owner = logged_in(world.owner_a)
    for message in (forged, gone, climbing):
        response = owner.get(url(message))
        assert response.status_code == 404, message.media
    # A message id of another conversation of the tenant.
    assert owner.get(f"/inbox/{forged.conversation_id}/media/{gone.pk}/").status_code == 404


def test_a_picture_in_the_bucket_is_shown(world, s3_media):
    server, bucket = s3_media
    png = b"\x89PNG\r\n\x1a\n" + bytes(64)
    ref = f"alpha/whatsapp/s1/2026/11/{hashlib.sha256(png).hexdigest()}.png"
    server.client().put_object(Bucket=bucket, Key=ref, Body=png, ContentType="image/png")
    picture = customer_sends(world.tenant_a, kind="image", ref=ref, mime="image/png")
    staff = logged_in(world.staff_a)

    assert (
        f'<img src="{url(picture)}"'
        in staff.get(f"/inbox/{picture.conversation_id}/").content.decode()
    )
    response = staff.get(url(picture))
    assert response.status_code == 200 and response["Content-Type"] == "image/png"
    assert b"".join(response.streaming_content) == png


def png(width: int, height: int) -> bytes:
    """A real PNG of ``width`` by ``height`` grey pixels."""
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)  # 8-bit greyscale
    rows = b"".join(b"\x00" + b"\x80" * width for _ in range(height))
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(rows))
        + chunk(b"IEND", b"")
    )


@pytest.mark.browser
def test_the_thread_plays_the_voice_note_and_shows_the_picture_in_a_browser(
    page, live_server_port, world, settings, tmp_path
):
    from apps.conversations.models import Contact
    from apps.speech.tests.audio import SPANISH, speech
    from conftest import on_own_connection as committed

    settings.MEDIA_ROOT = tmp_path
    voice = speech(tmp_path, SPANISH, language="es", fmt="ogg").read_bytes()
    picture = png(7, 5)
    wa_id = f"52155{uuid.uuid4().int % 10**8:08d}@c.us"
    refs = {}
    for name, data in (("ogg", voice), ("png", picture)):
        refs[name] = f"alpha/whatsapp/b1/2026/11/{hashlib.sha256(data).hexdigest()}.{name}"
        put(tmp_path, refs[name], data)

    def store() -> int:
        customer_sends(world.tenant_a, kind="audio", ref=refs["ogg"], mime="audio/ogg", wa_id=wa_id)
        picture = customer_sends(
            world.tenant_a, kind="image", ref=refs["png"], mime="image/png", wa_id=wa_id
        )
        return picture.conversation_id

    conversation_id = committed(store)
    try:
        page.goto(
            f"http://alpha.localhost:{live_server_port}/login/?next=/inbox/{conversation_id}/"
        )
        page.fill("#id_username", world.staff_a.email)
        page.fill("#id_password", world.staff_a.password)
        page.click("button[type=submit]")
        image = page.locator(".msg-media img")
        image.wait_for()
        width = image.evaluate(
            "img => img.complete ? img.naturalWidth : new Promise(done => "
            "img.addEventListener('load', () => done(img.naturalWidth)))"
        )
        assert width == 7
        duration = page.locator(".msg-media audio").evaluate(
            "audio => new Promise((done, failed) => {"
            " audio.addEventListener('loadedmetadata', () => done(audio.duration));"
            " audio.addEventListener('error', () => failed(String(audio.error.code)));"
            " audio.preload = 'auto'; audio.load(); })"
        )
        assert 2 < duration < 15  # the spoken sentence, decoded by the browser
    finally:

        def clean() -> None:
            with tenant_context(world.tenant_a):
                Contact.objects.filter(wa_id=wa_id).delete()

        committed(clean)


def test_byte_ranges_for_the_player(world, note):
    staff = logged_in(world.staff_a)

    def get(range_: str):
        response = staff.get(url(note), HTTP_RANGE=range_)
        body = b"".join(response.streaming_content) if response.streaming else response.content
        return response, body

    middle, body = get("bytes=10-19")
    assert middle.status_code == 206 and body == OGG[10:20]
    assert middle["Content-Range"] == f"bytes 10-19/{len(OGG)}"
    assert middle["Content-Length"] == "10" and middle["Content-Type"] == "audio/ogg"
    tail, body = get("bytes=-6")
    assert tail.status_code == 206 and body == OGG[-6:]
    rest, body = get("bytes=200-")
    assert rest.status_code == 206 and body == OGG[200:]
    beyond, _ = get(f"bytes={len(OGG)}-")
    assert beyond.status_code == 416 and beyond["Content-Range"] == f"bytes */{len(OGG)}"
    whole, body = get("")
    assert whole.status_code == 200 and body == OGG and whole["Accept-Ranges"] == "bytes"


def test_a_file_that_did_not_arrive_is_said_in_the_thread(world):
    picture = customer_sends(
        world.tenant_a,
        kind="image",
        ref=None,
        text="¿Lo tienen en azul?",
        media_error="media_too_large: 70.1 MB, over 64 MB",
    )
    page = logged_in(world.staff_a).get(f"/inbox/{picture.conversation_id}/").content.decode()
    assert '[Image] <span class="muted">the file did not arrive</span>' in page
    assert "media_too_large: 70.1 MB, over 64 MB" in page
    assert "¿Lo tienen en azul?" in page
