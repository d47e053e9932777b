"""What the customer reads when their voice note could not be transcribed.

Written in the customer's language (WhatsApp customers do not choose a dashboard language, so
these are not gettext catalog entries): Spanish and Portuguese first, English otherwise.
"""

from __future__ import annotations

_ASK_TO_WRITE = {
    "es": (
        "Lo siento, no he podido escuchar bien tu nota de voz. "
        "¿Podrías escribirme tu mensaje, por favor?"
    ),
    "pt": (
        "Desculpe, não consegui entender a sua mensagem de voz. "
        "Poderia escrever a sua mensagem, por favor?"
    ),
    "en": "Sorry, I couldn't make out your voice note. Could you please type your message?",
}


def voice_note_fallback_text(language: str | None) -> str:
    """The polite request to write instead, in ``language`` (``es-ES`` → ``es``), else English."""
    base = (language or "").replace("_", "-").split("-")[0].lower()
    return _ASK_TO_WRITE.get(base, _ASK_TO_WRITE["en"])
