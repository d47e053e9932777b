"""Files staff send to a customer: checked, stored in the media storage (eva/media.py), and
described as the message's media reference the gateway sends (``send_media``, docs/streams.md).

The type is told from the bytes, never from the name or the browser's word: what WhatsApp shows
as a picture, a voice note or a document, nothing else (no executables, no HTML).
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from pathlib import PurePath
from typing import IO, Any

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.files.base import ContentFile
from django.utils import timezone
from django.utils.formats import number_format
from django.utils.translation import gettext as _

from apps.conversations.models import Message
from eva.db import current_schema
from eva.media import STORAGE_ERRORS, MediaStorageUnavailable, shared_storage


@dataclass(frozen=True)
class _Type:
    mime: str
    extension: str
    kind: str


_PICTURES = {
    "jpg": _Type("image/jpeg", "jpg", Message.Kind.IMAGE),
    "png": _Type("image/png", "png", Message.Kind.IMAGE),
    "webp": _Type("image/webp", "webp", Message.Kind.IMAGE),
}
_AUDIO = {
    "ogg": _Type("audio/ogg", "ogg", Message.Kind.AUDIO),
    "mp3": _Type("audio/mpeg", "mp3", Message.Kind.AUDIO),
    "m4a": _Type("audio/mp4", "m4a", Message.Kind.AUDIO),
}
_DOCUMENTS = {
    "pdf": _Type("application/pdf", "pdf", Message.Kind.DOCUMENT),
    "docx": _Type(
        "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
        "docx",
        Message.Kind.DOCUMENT,
    ),
    "xlsx": _Type(
        "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
        "xlsx",
        Message.Kind.DOCUMENT,
    ),
    "csv": _Type("text/csv", "csv", Message.Kind.DOCUMENT),
    "txt": _Type("text/plain", "txt", Message.Kind.DOCUMENT),
}


def _sniff(data: bytes, name: str) -> _Type | None:
    """The file's type from its first bytes (the name only tells apart the formats that share
    a container: Word and Excel are both ZIP, CSV and text both plain text)."""
    head = data[:64]
    extension = PurePath(name).suffix.lower().lstrip(".")
    if head.startswith(b"\xff\xd8\xff"):
        return _PICTURES["jpg"]
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return _PICTURES["png"]
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return _PICTURES["webp"]
    if head.startswith(b"OggS"):
        return _AUDIO["ogg"]
    if head.startswith(b"ID3") or head[:2] in (b"\xff\xfb", b"\xff\xf3", b"\xff\xf2"):
        return _AUDIO["mp3"]
    if head[4:8] == b"ftyp" and head[8:12] == b"M4A ":
        return _AUDIO["m4a"]
    if head.startswith(b"%PDF-"):
        return _DOCUMENTS["pdf"]
    if head.startswith(b"PK\x03\x04") and extension in ("docx", "xlsx"):
        return _DOCUMENTS[extension]
    if extension in ("csv", "txt") and b"\x00" not in data:
        return _DOCUMENTS[extension]  # text in any encoding (Excel's CSV files are often not UTF-8)
    return None


def _safe_name(name: str, extension: str) -> str:
    """The file name the customer sees: the uploaded one, cleaned, with the right extension."""
    stem = re.sub(r"[^\w.\- ]+", "_", PurePath(name).stem).strip(" ._")[:80] or "file"
    return f"{stem}.{extension}"


def _megabytes(size: int) -> str:
    return number_format(round(size / 1_000_000, 1), decimal_pos=1)


def _read_within(upload: IO[bytes], limit: int) -> bytes:
    """The upload's bytes; ValidationError when it is empty or over ``limit``."""
    data = upload.read(limit + 1)
    if not data:
        raise ValidationError(_("The file is empty."))
    if len(data) > limit:
        size = getattr(upload, "size", None) or len(data)
        raise ValidationError(
            _("The file is %(size)s MB; the limit is %(limit)s MB.")
            % {"size": _megabytes(size), "limit": _megabytes(limit)}
        )
    return data


def attachment_store(upload: IO[bytes], *, name: str) -> tuple[str, dict[str, Any]]:
    """Check and store a file staff send; return (message kind, media reference).

    Raises ValidationError (nothing stored) for an empty or too large file or a type WhatsApp
    would not show, MediaStorageUnavailable when the storage does not answer. The key is
    content-addressed under the tenant's prefix (``<schema>/outbound/<yyyy>/<mm>/<sha256>.<ext>``):
    the same file twice is stored once.
    """
    data = _read_within(upload, settings.EVA_OUTBOUND_MEDIA_MAX_BYTES)
    kind = _sniff(data, name)
    if kind is None:
        raise ValidationError(
            _(
                "This type of file cannot be sent. Send a picture (JPEG, PNG, WebP), audio "
                "(OGG, MP3, M4A), a PDF, a Word or Excel file, or a text or CSV file."
            )
        )
    return kind.kind, _stored(data, kind, folder="outbound", name=name)


# What a browser records (MediaRecorder: WebM/Opus in Chromium, Ogg in Firefox) or a tenant has at
# hand; faster-whisper reads them all through ffmpeg.
_RECORDINGS = {
    "webm": _Type("audio/webm", "webm", Message.Kind.AUDIO),
    "wav": _Type("audio/wav", "wav", Message.Kind.AUDIO),
}


def simulator_voice_note_store(upload: IO[bytes], *, name: str) -> dict[str, Any]:
    """Check and store a voice note the simulator's customer sends; return its media reference
    (as the gateway describes a WhatsApp voice note, so the transcription reads it the same way).

    Raises ValidationError (nothing stored) for an empty or too large file or one that is not
    audio, MediaStorageUnavailable when the storage does not answer. Stored under
    ``<schema>/simulator/<yyyy>/<mm>/<sha256>.<ext>``.
    """
    data = _read_within(upload, settings.WHISPER_MAX_BYTES)
    kind = _sniff(data, name)
    if data.startswith(b"\x1a\x45\xdf\xa3"):
        kind = _RECORDINGS["webm"]
    elif data[:4] == b"RIFF" and data[8:12] == b"WAVE":
        kind = _RECORDINGS["wav"]
    if kind is None or kind.kind != Message.Kind.AUDIO:
        raise ValidationError(_("A voice note must be audio: OGG, MP3, M4A, WebM or WAV."))
    return _stored(data, kind, folder="simulator", name=name)


def _stored(data: bytes, kind: _Type, *, folder: str, name: str) -> dict[str, Any]:
    """Store ``data`` once (content-addressed under the tenant's prefix); its media reference."""
    digest = hashlib.sha256(data).hexdigest()
    now = timezone.now()
    key = f"{current_schema()}/{folder}/{now:%Y}/{now:%m}/{digest}.{kind.extension}"
    storage = shared_storage()
    try:
        if not storage.exists(key):
            key = storage.save(key, ContentFile(data))
    except STORAGE_ERRORS as exc:
        raise MediaStorageUnavailable(
            _("The file could not be stored: the media storage is not answering. Try again soon.")
        ) from exc
    return {
        "ref": key,
        "mime": kind.mime,
        "size": len(data),
        "sha256": digest,
        "filename": _safe_name(name, kind.extension),
    }
