"""Word error rate and the customer-facing fallback reply."""

from __future__ import annotations

import pytest

from apps.speech.replies import voice_note_fallback_text
from apps.speech.wer import normalise_words, word_error_rate


def test_word_error_rate_counts_edits_per_reference_word() -> None:
    assert word_error_rate("hola que tal", "Hola, ¿qué tal?") == 0.0
    assert word_error_rate("dos camisetas azules", "los camisetas a sures") == 1.0
    assert word_error_rate("uno dos tres cuatro", "uno tres cuatro") == 0.25
    assert normalise_words("¿Cuánto cuesta el envío?") == ["cuanto", "cuesta", "el", "envio"]


@pytest.mark.parametrize(
    ("language", "expected"),
    [("es", "escribirme"), ("es-MX", "escribirme"), ("pt_BR", "escrever"), ("en", "type")],
)
def test_fallback_reply_speaks_the_customer_language(language: str, expected: str) -> None:
    assert expected in voice_note_fallback_text(language)


def test_fallback_reply_defaults_to_english() -> None:
    assert voice_note_fallback_text(None) == voice_note_fallback_text("de")
    assert "type your message" in voice_note_fallback_text(None)
