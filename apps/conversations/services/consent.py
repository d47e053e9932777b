"""Consent: the words with which a customer stops the bot (or comes back), and applying them."""

from __future__ import annotations

import re
import unicodedata
from datetime import datetime
from functools import lru_cache

from django.conf import settings

from apps.conversations.models import Contact


def _normalize(text: str) -> str:
    text = unicodedata.normalize("NFKD", text.casefold())
    text = "".join(c for c in text if not unicodedata.combining(c))
    return re.sub(r"[\W_]+", " ", text).strip()


@lru_cache(maxsize=16)
def _consent_words(words: tuple[str, ...]) -> tuple[frozenset[str], tuple[str, ...]]:
    """Configured words, normalized once: whole-message words, and phrases (several words)."""
    normalized = [w for w in map(_normalize, words) if w]
    return frozenset(normalized), tuple(w for w in normalized if " " in w)


def _asks_to_stop(said: str) -> bool:
    words, phrases = _consent_words(tuple(settings.EVA_OPT_OUT_WORDS))
    return said in words or any(f" {phrase} " in f" {said} " for phrase in phrases)


def _asks_to_start(said: str) -> bool:
    return said in _consent_words(tuple(settings.EVA_OPT_IN_WORDS))[0]


def opt_out_requested(text: str) -> bool:
    """True when the customer asks to stop: a one-word message that is an opt-out word ("STOP",
    "BAJA"), or a message containing an opt-out phrase ("no me escriban más")."""
    said = _normalize(text)
    return bool(said) and _asks_to_stop(said)


def opt_in_requested(text: str) -> bool:
    said = _normalize(text)
    return bool(said) and _asks_to_start(said)


def _apply_consent(contact: Contact, text: str, now: datetime) -> None:
    if not contact.opted_out and opt_out_requested(text):
        contact.opted_out, contact.opted_out_at = True, now
        contact.save(update_fields=["opted_out", "opted_out_at", "updated_at"])
    elif contact.opted_out and opt_in_requested(text):
        contact.opted_out, contact.opted_out_at = False, None
        contact.save(update_fields=["opted_out", "opted_out_at", "updated_at"])


def _consent_word(text: str) -> str:
    said = _normalize(text)
    if not said:
        return ""
    if _asks_to_stop(said):
        return "out"
    return "in" if _asks_to_start(said) else ""
