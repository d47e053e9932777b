"""Real speech for tests: Debian's espeak-ng speaks a sentence, ffmpeg encodes it.

WhatsApp voice notes are OGG/Opus (48 kHz mono, low bitrate); forwarded audio files are MP3,
M4A/AAC or WAV. `make test` installs both tools (APT_PACKAGES in the Makefile).
"""

from __future__ import annotations

import hashlib
import shutil
import subprocess
from pathlib import Path

# Sentences espeak-ng pronounces clearly enough for Whisper (checked with base and tiny.en).
SPANISH = "Buenos días, necesito información sobre el precio de los zapatos negros."
PORTUGUESE = "Olá, quero comprar duas camisas brancas, por favor."
ENGLISH = "Good morning, how much does the large blue backpack cost?"

VOICES = {"es": "es", "pt": "pt-br", "en": "en-us"}
CODECS = {
    "ogg": ["-c:a", "libopus", "-b:a", "24k", "-ar", "48000"],  # WhatsApp voice note
    "mp3": ["-c:a", "libmp3lame", "-b:a", "64k"],
    "m4a": ["-c:a", "aac", "-b:a", "64k"],
    "wav": ["-c:a", "pcm_s16le"],
}


def _tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        raise RuntimeError(f"{name} is missing: `make test` installs it (APT_PACKAGES)")
    return path


def speech(directory: Path, text: str, *, language: str, fmt: str = "ogg") -> Path:
    """A file of ``text`` spoken in ``language`` (es, pt, en), encoded as ``fmt``; cached."""
    name = hashlib.sha256(f"{language}|{fmt}|{text}".encode()).hexdigest()[:16]
    target = directory / f"{name}.{fmt}"
    if target.exists():
        return target
    wav = directory / f"{name}.espeak.wav"
    subprocess.run(
        [_tool("espeak-ng"), "-v", VOICES[language], "-s", "140", "-w", str(wav), text],
        check=True,
        capture_output=True,
    )
    encode(wav, target, fmt=fmt)
    return target


def encode(source: Path, target: Path, *, fmt: str) -> Path:
    subprocess.run(
        [_tool("ffmpeg"), "-loglevel", "error", "-y", "-i", str(source), *CODECS[fmt], str(target)],
        check=True,
    )
    return target


def generated(directory: Path, name: str, lavfi: str, seconds: float, fmt: str = "ogg") -> Path:
    """A clip from an ffmpeg source filter: ``anullsrc=r=48000:cl=mono`` (silence), a sine…"""
    target = directory / f"{name}.{fmt}"
    if not target.exists():
        subprocess.run(
            [_tool("ffmpeg"), "-loglevel", "error", "-y", "-f", "lavfi", "-i", lavfi,
             "-t", str(seconds), *CODECS[fmt], str(target)],
            check=True,
        )  # fmt: skip
    return target
