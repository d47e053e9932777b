"""Document parsing, kept free of Django so it can run in a sandboxed child process.

``detect`` tells what a file is from its bytes, ``guards`` checks archives before anything opens
them, ``formats`` turns each format into structural blocks, ``sandbox`` runs ``formats`` in a
child process with CPU, memory and wall-clock limits, and ``chunking`` cuts blocks into chunks.
"""

from __future__ import annotations

from collections.abc import Mapping


def gettext_noop(message: str) -> str:
    """Marks a refusal (or a phrase it names) for translation without importing Django: the
    text is kept in English here and the dashboard shows it in the admin's language
    (``apps.knowledge.models.refusal_text``); ``makemessages`` finds it by this name."""
    return message


class DocumentRejectedError(Exception):
    """A file EVA will not read. ``message`` is written for a tenant admin, not a developer:
    ``template`` (English, marked with ``gettext_noop``) with ``params`` put in (numbers already
    formatted; phrases marked with ``gettext_noop`` are translated too when shown)."""

    def __init__(
        self, code: str, template: str, params: Mapping[str, object] | None = None
    ) -> None:
        self.code = code
        self.template = template
        self.params = {key: str(value) for key, value in (params or {}).items()}
        self.message = template % self.params if self.params else template
        super().__init__(self.message)
