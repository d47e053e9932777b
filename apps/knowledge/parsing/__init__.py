"""Document parsing, kept free of Django so it can run in a sandboxed child process.

``detect`` tells what a file is from its bytes, ``guards`` checks archives before anything opens
them, ``formats`` turns each format into structural blocks, ``sandbox`` runs ``formats`` in a
child process with CPU, memory and wall-clock limits, and ``chunking`` cuts blocks into chunks.
"""

from __future__ import annotations


class DocumentRejectedError(Exception):
    """A file EVA will not read. ``message`` is written for a tenant admin, not a developer."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
