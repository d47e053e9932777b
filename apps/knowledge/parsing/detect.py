"""What a file is, from its bytes (magic numbers), never from its name alone.

The name only breaks ties between text formats that have no signature (Markdown vs. plain text
vs. CSV). A name that promises a binary format the bytes do not deliver (a text file or an image
renamed to ``.pdf``) is rejected: the admin probably picked the wrong file.
"""

from __future__ import annotations

import csv
import io
import re
import zipfile
from pathlib import PurePath
from typing import BinaryIO

from apps.knowledge.parsing import DocumentRejectedError, gettext_noop

KINDS = ("pdf", "docx", "xlsx", "csv", "txt", "md", "html")
BINARY_KINDS = {"pdf", "docx", "xlsx"}
KIND_LABELS = {
    "pdf": "PDF",
    "docx": "Word document",
    "xlsx": "Excel workbook",
    "csv": "CSV",
    "txt": "plain text",
    "md": "Markdown",
    "html": "HTML",
}
# What a file named as (or found to be) each kind is, in a refusal's words.
_KIND_PHRASES = {
    "pdf": gettext_noop("a PDF"),
    "docx": gettext_noop("a Word document"),
    "xlsx": gettext_noop("an Excel workbook"),
    "csv": gettext_noop("a CSV file"),
    "txt": gettext_noop("plain text"),
    "md": gettext_noop("a Markdown file"),
    "html": gettext_noop("an HTML page"),
}
_UPLOAD_THESE = gettext_noop(
    "Upload PDF, Word (.docx), Excel (.xlsx), CSV, text, Markdown or HTML."
)
_EXTENSION_KINDS = {
    ".pdf": "pdf",
    ".docx": "docx",
    ".xlsx": "xlsx",
    ".csv": "csv",
    ".tsv": "csv",
    ".txt": "txt",
    ".text": "txt",
    ".md": "md",
    ".markdown": "md",
    ".html": "html",
    ".htm": "html",
}
# Formats people upload by mistake, named so the message can say what the file really is.
_FOREIGN_SIGNATURES: tuple[tuple[bytes, str], ...] = (
    (b"\x89PNG\r\n\x1a\n", gettext_noop("a PNG image")),
    (b"\xff\xd8\xff", gettext_noop("a JPEG image")),
    (b"GIF87a", gettext_noop("a GIF image")),
    (b"GIF89a", gettext_noop("a GIF image")),
    (b"RIFF", gettext_noop("a RIFF media file (WebP, WAV or AVI)")),
    (b"OggS", gettext_noop("an Ogg audio file")),
    (b"ID3", gettext_noop("an MP3 audio file")),
    (b"\x1f\x8b", gettext_noop("a gzip archive")),
    (b"Rar!", gettext_noop("a RAR archive")),
    (b"7z\xbc\xaf\x27\x1c", gettext_noop("a 7-Zip archive")),
    (b"\x7fELF", gettext_noop("a program (ELF executable)")),
    (b"MZ", gettext_noop("a Windows program")),
    (b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1", gettext_noop("an old-style Office file (.doc/.xls)")),
    (b"{\\rtf", gettext_noop("an RTF document")),
)
_HTML_START = re.compile(
    rb"^\s*(<!--.*?-->\s*)*<(!doctype\s+html|html[\s>]|head[\s>]|body[\s>])", re.I | re.S
)
_HTML_TAGS = re.compile(rb"<(p|div|h[1-6]|table|ul|ol|li|br|span|a)[\s>/]", re.I)
_MD_MARKERS = re.compile(r"^(#{1,6}\s+\S|\s*[-*+]\s+\S|\s*\d+\.\s+\S|\|.*\|\s*$|```)", re.M)


def detect_kind(stream: BinaryIO, filename: str) -> str:
    """Return one of ``KINDS`` for the file, or raise ``DocumentRejectedError``.

    Reads the first 64 KiB, and for ZIP containers the central directory (cheap: no member is
    decompressed here; the zip-bomb checks in ``guards`` come before anything is).
    """
    stream.seek(0)
    head = stream.read(65536)
    stream.seek(0)
    claimed = _EXTENSION_KINDS.get(PurePath(filename or "").suffix.lower())
    if not head:
        raise DocumentRejectedError("empty", gettext_noop("The file is empty."))

    if b"%PDF-" in head[:1024]:
        kind = "pdf"
    elif head.startswith(b"PK\x03\x04"):
        kind = _office_kind(stream)
    else:
        for signature, what in _FOREIGN_SIGNATURES:
            if head.startswith(signature):
                raise DocumentRejectedError(
                    "unsupported_type",
                    gettext_noop("This file is %(what)s, not a document EVA can read. %(upload)s"),
                    {"what": what, "upload": _UPLOAD_THESE},
                )
        kind = _text_kind(head, claimed)

    if claimed in BINARY_KINDS and kind != claimed:
        raise DocumentRejectedError(
            "type_mismatch",
            gettext_noop(
                "The file is named like %(claimed)s (“%(filename)s”) but its content is "
                "%(actual)s. Check that you picked the right file, or rename it."
            ),
            {
                "claimed": _KIND_PHRASES[claimed],
                "filename": filename,
                "actual": _KIND_PHRASES[kind],
            },
        )
    return kind


def _office_kind(stream: BinaryIO) -> str:
    try:
        with zipfile.ZipFile(stream) as archive:
            names = set(archive.namelist())
    except (zipfile.BadZipFile, OSError, ValueError) as exc:
        raise DocumentRejectedError(
            "corrupt",
            gettext_noop(
                "The file looks like a ZIP/Office file but is damaged and cannot be opened."
            ),
        ) from exc
    finally:
        stream.seek(0)
    if "word/document.xml" in names:
        return "docx"
    if "xl/workbook.xml" in names:
        return "xlsx"
    if any(name.startswith("ppt/") for name in names):
        raise DocumentRejectedError(
            "unsupported_type",
            gettext_noop(
                "PowerPoint presentations are not supported. Export it as PDF and upload that."
            ),
        )
    raise DocumentRejectedError(
        "unsupported_type",
        gettext_noop(
            "This file is a ZIP archive, not a Word or Excel document. "
            "Upload the documents inside it."
        ),
    )


def _decode_sample(head: bytes) -> str | None:
    """The sample as text if it is text (UTF-8/UTF-16 with BOM or Latin-1 without controls)."""
    if head.startswith((b"\xff\xfe", b"\xfe\xff")):
        return head.decode("utf-16", errors="ignore")
    if b"\x00" in head:
        return None
    try:
        text = head.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        # A multi-byte character cut by the 64 KiB window is still UTF-8.
        if exc.start >= len(head) - 4:
            text = head[: exc.start].decode("utf-8-sig")
        else:
            text = head.decode("cp1252", errors="replace")
    controls = sum(1 for ch in text if ord(ch) < 32 and ch not in "\t\r\n\f")
    if controls > max(2, len(text) // 100):
        return None
    return text


def _text_kind(head: bytes, claimed: str | None) -> str:
    text = _decode_sample(head)
    if text is None:
        raise DocumentRejectedError(
            "unsupported_type",
            gettext_noop(
                "This file is not a document EVA can read (unknown binary format). %(upload)s"
            ),
            {"upload": _UPLOAD_THESE},
        )
    if _HTML_START.match(head) or (claimed == "html" and _HTML_TAGS.search(head)):
        return "html"
    if claimed in ("csv", "md", "txt", "html"):
        return claimed
    if claimed in BINARY_KINDS:
        return "txt"  # the caller reports the mismatch with the name
    # No usable name: decide from the content alone.
    if _looks_tabular(text):
        return "csv"
    if len(_MD_MARKERS.findall(text)) >= 2:
        return "md"
    return "txt"


def _looks_tabular(text: str) -> bool:
    lines = [line for line in text.splitlines()[:20] if line.strip()]
    if len(lines) < 3:
        return False
    try:
        dialect = csv.Sniffer().sniff("\n".join(lines), delimiters=",;\t|")
    except csv.Error:
        return False
    widths = {len(row) for row in csv.reader(io.StringIO("\n".join(lines)), dialect)}
    return len(widths) == 1 and widths.pop() >= 3
