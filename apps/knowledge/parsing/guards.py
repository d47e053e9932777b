"""Checks that run before a parser touches a hostile file.

DOCX and XLSX are ZIP archives of XML. A zip bomb declares (or hides) a huge uncompressed size
behind a tiny file; an XML bomb ("billion laughs") or an external entity hides in a DTD. Both are
refused here from the central directory and a DTD-forbidding parse, before python-docx or
openpyxl decompress anything for real. ``zipfile`` never reads past a member's declared size, so
checking declared sizes bounds what the parsers can inflate; the memory limit of the sandbox
covers anything that slips through.
"""

from __future__ import annotations

import zipfile
from dataclasses import dataclass
from typing import BinaryIO

from defusedxml import DefusedXmlException
from defusedxml.ElementTree import iterparse

from apps.knowledge.parsing import DocumentRejectedError, gettext_noop


@dataclass(frozen=True)
class ArchiveLimits:
    max_members: int = 5000
    max_uncompressed_bytes: int = 100 * 1024 * 1024
    max_ratio: int = 100
    # Tiny members compress absurdly well (a run of spaces); the ratio only matters above this.
    ratio_floor_bytes: int = 1024 * 1024


def check_office_archive(stream: BinaryIO, limits: ArchiveLimits, *, scan_xml: bool = True) -> None:
    """Refuse zip bombs and XML with DTDs in a DOCX/XLSX. Raises ``DocumentRejectedError``.

    ``scan_xml=False`` checks only the central directory (sizes, ratios, encryption): cheap
    enough for the upload request; the worker runs the full check.
    """
    stream.seek(0)
    try:
        archive = zipfile.ZipFile(stream)
    except (zipfile.BadZipFile, OSError, ValueError) as exc:
        raise DocumentRejectedError(
            "corrupt", gettext_noop("The file is damaged (its ZIP structure cannot be read).")
        ) from exc
    with archive:
        members = archive.infolist()
        if len(members) > limits.max_members:
            raise DocumentRejectedError(
                "zip_bomb",
                gettext_noop(
                    "The file contains %(parts)s internal parts (limit %(limit)s); "
                    "it looks malformed or malicious and was not opened."
                ),
                {"parts": len(members), "limit": limits.max_members},
            )
        total = 0
        for member in members:
            if member.flag_bits & 0x1:
                raise DocumentRejectedError(
                    "encrypted",
                    gettext_noop(
                        "The file is password-protected. Remove the password and upload it again."
                    ),
                )
            total += member.file_size
            ratio = member.file_size / max(member.compress_size, 1)
            if member.file_size > limits.ratio_floor_bytes and ratio > limits.max_ratio:
                raise DocumentRejectedError(
                    "zip_bomb",
                    gettext_noop(
                        "The file expands %(ratio)s times when unpacked (limit %(limit)s); "
                        "it looks like a zip bomb and was not opened."
                    ),
                    {"ratio": f"{ratio:.0f}", "limit": limits.max_ratio},
                )
        if total > limits.max_uncompressed_bytes:
            raise DocumentRejectedError(
                "zip_bomb",
                gettext_noop(
                    "The file unpacks to %(size)s MB (limit %(limit)s MB) and was not opened."
                ),
                {
                    "size": total // (1024 * 1024),
                    "limit": limits.max_uncompressed_bytes // (1024 * 1024),
                },
            )
        for member in members if scan_xml else ():
            if member.filename.endswith((".xml", ".rels")):
                _check_xml(archive, member)
    stream.seek(0)


def _check_xml(archive: zipfile.ZipFile, member: zipfile.ZipInfo) -> None:
    """OOXML never needs a DTD, so any DTD or entity declaration is refused outright."""
    try:
        with archive.open(member) as part:
            for _event, element in iterparse(part, forbid_dtd=True, forbid_entities=True):
                element.clear()
    except DefusedXmlException as exc:
        raise DocumentRejectedError(
            "unsafe_xml",
            gettext_noop(
                "The file contains XML constructs (DTD/entities) that Office never writes; "
                "it was refused as potentially malicious."
            ),
        ) from exc
    except (zipfile.BadZipFile, OSError, EOFError) as exc:
        raise DocumentRejectedError(
            "corrupt", gettext_noop("The file is damaged and cannot be read.")
        ) from exc
    except Exception as exc:  # ElementTree.ParseError and friends
        raise DocumentRejectedError(
            "corrupt",
            gettext_noop("The file is damaged: part %(part)s is not valid XML."),
            {"part": member.filename},
        ) from exc
