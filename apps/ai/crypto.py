"""Encryption of tenants' own API keys at rest (Fernet: AES-128-CBC + HMAC-SHA256).

The Fernet key is AI_KEYS_ENCRYPTION_KEY when it is a Fernet key (urlsafe base64 of 32 bytes);
any other value, or SECRET_KEY when it is unset, is stretched into one with HKDF. Rotating
SECRET_KEY without setting AI_KEYS_ENCRYPTION_KEY to the old derivation makes stored keys
unreadable: tenants then re-enter them (docs/models.md).
"""

from __future__ import annotations

import base64
import binascii
from functools import lru_cache

from cryptography.fernet import Fernet, InvalidToken
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from django.conf import settings

from .errors import AIError


class KeyUnreadable(AIError):
    """A stored key cannot be decrypted (the encryption key changed)."""


@lru_cache(maxsize=4)
def _fernet(material: str) -> Fernet:
    try:
        if len(base64.urlsafe_b64decode(material.encode())) == 32:
            return Fernet(material.encode())
    except (binascii.Error, ValueError):
        pass
    derived = HKDF(
        algorithm=hashes.SHA256(), length=32, salt=None, info=b"eva.ai.provider-keys.v1"
    ).derive(material.encode())
    return Fernet(base64.urlsafe_b64encode(derived))


def _current() -> Fernet:
    return _fernet(settings.AI_KEYS_ENCRYPTION_KEY or settings.SECRET_KEY)


def encrypt(plaintext: str) -> str:
    return _current().encrypt(plaintext.encode()).decode()


def decrypt(token: str) -> str:
    try:
        return _current().decrypt(token.encode()).decode()
    except InvalidToken as exc:
        raise KeyUnreadable("a stored provider key cannot be decrypted; enter it again") from exc
