"""Word error rate: how far a transcript is from what was said (tests and the benchmark)."""

from __future__ import annotations

import unicodedata


def normalise_words(text: str) -> list[str]:
    """Lower-case words without punctuation or accents ("¿Cuánto?" → "cuanto")."""
    decomposed = unicodedata.normalize("NFKD", text.lower())
    kept = "".join(
        ch if not unicodedata.category(ch).startswith(("P", "S")) else " "
        for ch in decomposed
        if not unicodedata.combining(ch)
    )
    return kept.split()


def word_error_rate(reference: str, hypothesis: str) -> float:
    """(substitutions + deletions + insertions) / words in ``reference`` (Levenshtein on words)."""
    ref, hyp = normalise_words(reference), normalise_words(hypothesis)
    if not ref:
        return 0.0 if not hyp else 1.0
    previous = list(range(len(hyp) + 1))
    for i, ref_word in enumerate(ref, start=1):
        current = [i] + [0] * len(hyp)
        for j, hyp_word in enumerate(hyp, start=1):
            current[j] = min(
                previous[j] + 1,  # deletion
                current[j - 1] + 1,  # insertion
                previous[j - 1] + (ref_word != hyp_word),  # substitution or match
            )
        previous = current
    return previous[-1] / len(ref)
