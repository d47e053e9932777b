"""Document parsing, kept free of Django so it can run in a sandboxed child process.

``detect`` tells what a file is from its bytes, ``guards`` checks archives before anything opens
them, ``formats`` turns each format into structural blocks, ``sandbox`` runs ``formats`` in a
child process with CPU, memory and wall-clock limits, and ``chunking`` cuts blocks into chunks.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from decimal import Decimal


def gettext_noop(message: str) -> str:
    """Marks a refusal (or a phrase it names) for translation without importing Django: the
    text is kept in English here and the dashboard shows it in the admin's language
    (``apps.knowledge.models.refusal_text``); ``makemessages`` finds it by this name."""
    return message


_NUMBER = re.compile(r"[0-9]+(?:\.[0-9]+)?")


def number_value(value: str) -> tuple[Decimal, int] | None:
    """A refusal's parameter read as a number ("20000", "31.2") with its decimal places, or None
    when it is not one (a phrase, a file name)."""
    if not _NUMBER.fullmatch(value):
        return None
    return Decimal(value), len(value.partition(".")[2])


def _grouped(value: str) -> str:
    """A number with English separators ("20,000", "1,536.5"); anything else as it is."""
    number = number_value(value)
    return value if number is None else f"{number[0]:,.{number[1]}f}"


class DocumentRejectedError(Exception):
    """A file EVA will not read. ``message`` is written for a tenant admin, not a developer:
    ``template`` (English, marked with ``gettext_noop``) with ``params`` put in (numbers
    written with the separators of the admin's locale when shown; phrases marked with
    ``gettext_noop`` are translated too)."""

    def __init__(
        self, code: str, template: str, params: Mapping[str, object] | None = None
    ) -> None:
        self.code = code
        self.template = template
        self.params = {key: str(value) for key, value in (params or {}).items()}
        grouped = {key: _grouped(value) for key, value in self.params.items()}
        self.message = template % grouped if grouped else template
        super().__init__(self.message)
