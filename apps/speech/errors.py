"""Why a transcription did not happen.

``AudioRejected`` is permanent: the same file fails the same way on every retry, so the caller
marks the message failed with ``code``/``reason`` instead of retrying. ``ModelUnavailable`` is an
operator problem (a wrong ``WHISPER_MODEL``, a missing wheel, no network for a download): it is
raised as is, so the task's retries and the dead-letter queue take over.
"""

from __future__ import annotations


class AudioRejected(Exception):
    """The audio cannot be transcribed; ``code`` is stable, ``reason`` is for people."""

    CODES = (
        "audio_missing",
        "audio_empty",
        "audio_too_large",
        "audio_too_long",
        "audio_unreadable",
        "audio_unsupported",
        "no_speech",
    )

    def __init__(self, code: str, reason: str) -> None:
        if code not in self.CODES:
            raise ValueError(f"unknown audio rejection code {code!r}")
        super().__init__(f"{code}: {reason}")
        self.code = code
        self.reason = reason


class ModelUnavailable(RuntimeError):
    """The configured Whisper model cannot be found, prepared or loaded."""
