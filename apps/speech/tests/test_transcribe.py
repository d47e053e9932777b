"""Real speech (espeak-ng) through the real models: the transcript matches what was said."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from apps.speech.engine import WhisperConfig, transcribe_file
from apps.speech.tests.audio import ENGLISH, PORTUGUESE, SPANISH, speech
from apps.speech.wer import word_error_rate


def test_spanish_voice_note_is_transcribed_with_detected_language(
    clips: Path, base_config: WhisperConfig
) -> None:
    note = speech(clips, SPANISH, language="es", fmt="ogg")

    transcript = transcribe_file(note, config=base_config)

    assert word_error_rate(SPANISH, transcript.text) <= 0.35, transcript.text
    assert "zapatos" in transcript.text.lower()
    assert transcript.language == "es"
    assert 0.5 < transcript.language_probability <= 1.0
    assert 3.0 < transcript.duration_s < 8.0
    assert transcript.model == "base"
    assert transcript.processing_s > 0


def test_portuguese_voice_note_with_the_tenant_language_as_hint(
    clips: Path, base_config: WhisperConfig
) -> None:
    note = speech(clips, PORTUGUESE, language="pt", fmt="ogg")

    transcript = transcribe_file(note, language_hint="pt-BR", config=base_config)

    assert word_error_rate(PORTUGUESE, transcript.text) <= 0.35, transcript.text
    assert "camisas" in transcript.text.lower()
    assert transcript.language == "pt"


def test_english_voice_note_with_the_english_only_model(
    clips: Path, tiny_en_config: WhisperConfig
) -> None:
    note = speech(clips, ENGLISH, language="en", fmt="ogg")

    transcript = transcribe_file(note, language_hint="es", config=tiny_en_config)

    assert word_error_rate(ENGLISH, transcript.text) <= 0.25, transcript.text
    assert "backpack" in transcript.text.lower()
    assert transcript.language == "en"
    assert transcript.model == "tiny.en"


@pytest.mark.parametrize("fmt", ["mp3", "m4a", "wav"])
def test_forwarded_audio_files_are_transcribed(
    clips: Path, tiny_en_config: WhisperConfig, fmt: str
) -> None:
    audio = speech(clips, ENGLISH, language="en", fmt=fmt)

    transcript = transcribe_file(audio, config=tiny_en_config)

    assert word_error_rate(ENGLISH, transcript.text) <= 0.25, (fmt, transcript.text)


def test_hint_replaces_an_unsure_detection_and_not_a_sure_one(
    clips: Path, base_config: WhisperConfig
) -> None:
    note = speech(clips, SPANISH, language="es", fmt="ogg")

    # Threshold above any probability: every detection counts as unsure, so the hint wins and
    # the reported probability is the detector's for the hinted language (low for Spanish audio).
    unsure = replace(base_config, language_threshold=1.01)
    hinted = transcribe_file(note, language_hint="pt", config=unsure)
    assert hinted.language == "pt"
    assert hinted.language_probability < 0.5

    # Threshold 0: every detection is sure, the hint is ignored.
    sure = replace(base_config, language_threshold=0.0)
    detected = transcribe_file(note, language_hint="pt", config=sure)
    assert detected.language == "es"


def test_forced_language_is_used_as_given(clips: Path, base_config: WhisperConfig) -> None:
    note = speech(clips, PORTUGUESE, language="pt", fmt="ogg")

    transcript = transcribe_file(note, language="pt", config=base_config)

    assert transcript.language == "pt"
    assert transcript.language_probability == 1.0
    assert "camisas" in transcript.text.lower()


@pytest.mark.parametrize(
    ("detected", "probability", "hint", "expected"),
    [
        ("es", 0.9, "pt", ("es", 0.9)),  # a sure guess among the expected languages wins
        ("es", 0.3, "pt", ("pt", 0.1)),  # an unsure guess gives way to the tenant's language
        ("it", 0.9, "pt", ("pt", 0.1)),  # a language nobody expects is not trusted
        ("it", 0.9, None, ("pt", 0.1)),  # ...without a hint, the likeliest expected one
        ("it", 0.9, "de", ("de", 0.0)),  # the tenant's own language is always allowed
    ],
)
def test_choose_language(
    detected: str, probability: float, hint: str | None, expected: tuple[str, float]
) -> None:
    from apps.speech.engine import choose_language

    probabilities = {"it": 0.9, "es": 0.05, "pt": 0.1, "en": 0.01, "de": 0.0}
    if detected == "es":
        probabilities["es"] = probability

    chosen = choose_language(
        detected=detected,
        probability=probability,
        all_probabilities=probabilities,
        hint=hint,
        config=WhisperConfig(languages=("es", "pt", "en")),
    )

    assert chosen == expected
