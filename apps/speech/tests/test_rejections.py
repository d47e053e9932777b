"""Audio that cannot be transcribed fails with a stable code and a reason a person understands."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from apps.speech.engine import WhisperConfig, transcribe_file
from apps.speech.errors import AudioRejected
from apps.speech.tests.audio import ENGLISH, SPANISH, encode, generated, speech


def rejection(path: Path, config: WhisperConfig) -> AudioRejected:
    with pytest.raises(AudioRejected) as caught:
        transcribe_file(path, config=config)
    return caught.value


def test_zero_length_file(tmp_path: Path, base_config: WhisperConfig) -> None:
    empty = tmp_path / "empty.ogg"
    empty.write_bytes(b"")

    error = rejection(empty, base_config)

    assert error.code == "audio_empty"
    assert "0 bytes" in error.reason


def test_corrupt_file(tmp_path: Path, base_config: WhisperConfig) -> None:
    corrupt = tmp_path / "corrupt.ogg"
    corrupt.write_bytes(bytes(range(256)) * 64)

    assert rejection(corrupt, base_config).code == "audio_unreadable"


def test_voice_note_cut_off_in_the_header(
    clips: Path, tmp_path: Path, base_config: WhisperConfig
) -> None:
    note = speech(clips, SPANISH, language="es", fmt="ogg")
    cut = tmp_path / "cut.ogg"
    cut.write_bytes(note.read_bytes()[:40])

    assert rejection(cut, base_config).code in {"audio_unreadable", "audio_empty"}


def test_file_without_an_audio_track(tmp_path: Path, base_config: WhisperConfig) -> None:
    # A PNG forwarded as "audio": FFmpeg opens it, but there is nothing to listen to.
    image = tmp_path / "photo.png"
    image.write_bytes(
        bytes.fromhex(
            "89504e470d0a1a0a0000000d4948445200000001000000010806000000"
            "1f15c4890000000d49444154789c6360000002000001e221bc330000000049454e44ae426082"
        )
    )

    error = rejection(image, base_config)

    assert error.code in {"audio_unsupported", "audio_unreadable"}


def test_missing_file(tmp_path: Path, base_config: WhisperConfig) -> None:
    assert rejection(tmp_path / "gone.ogg", base_config).code == "audio_missing"


def test_silence_has_no_speech(clips: Path, base_config: WhisperConfig) -> None:
    silence = generated(clips, "silence", "anullsrc=r=48000:cl=mono", 4)

    error = rejection(silence, base_config)

    assert error.code == "no_speech"


def test_over_the_duration_limit(clips: Path, base_config: WhisperConfig) -> None:
    # The container declares its duration, so the note is refused before it is decoded.
    long_note = generated(clips, "ten-seconds", "anullsrc=r=48000:cl=mono", 10)
    strict = replace(base_config, max_duration_s=5)

    error = rejection(long_note, strict)

    assert error.code == "audio_too_long"
    assert error.reason == "the audio lasts 10 s; the limit is 5 s"


def test_over_the_duration_limit_without_a_declared_duration(
    clips: Path, tmp_path: Path, base_config: WhisperConfig
) -> None:
    # A raw ADTS AAC stream declares no reliable duration: the decoded length is the judge.
    spoken = speech(clips, ENGLISH, language="en", fmt="wav")
    adts = encode(spoken, tmp_path / "note.aac", fmt="m4a")
    strict = replace(base_config, max_duration_s=1.5)

    error = rejection(adts, strict)

    assert error.code == "audio_too_long"


def test_over_the_size_limit(clips: Path, base_config: WhisperConfig) -> None:
    note = speech(clips, SPANISH, language="es", fmt="wav")
    strict = replace(base_config, max_bytes=10_000)

    error = rejection(note, strict)

    assert error.code == "audio_too_large"
    assert "MB" in error.reason
