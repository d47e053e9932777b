"""Typed readers for the environment.

Settings read every value through these helpers so that a malformed value fails at start-up
with an ``ImproperlyConfigured`` naming the variable, instead of surfacing later as a confusing
runtime error. Each reader also accepts ``NAME_FILE`` (the Docker secrets convention): the value
is then read from that file, stripped of surrounding whitespace.
"""

from __future__ import annotations

import os
from pathlib import Path
from urllib.parse import urlsplit

from django.core.exceptions import ImproperlyConfigured

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}
_UNSET = object()


def raw(name: str) -> str | None:
    """Return the variable's text, from ``NAME`` or the file named by ``NAME_FILE``."""
    path = os.environ.get(f"{name}_FILE")
    if path:
        try:
            return Path(path).read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise ImproperlyConfigured(
                f"{name}_FILE points to {path!r}, which cannot be read: {exc.strerror}"
            ) from exc
    return os.environ.get(name)


def string(name: str, default: str | object | None = _UNSET) -> str:
    value = raw(name)
    if value is None or value == "":
        if default is _UNSET:
            raise ImproperlyConfigured(f"{name} is required but not set")
        return default  # type: ignore[return-value]
    return value


def optional(name: str) -> str | None:
    value = raw(name)
    return value or None


def boolean(name: str, default: bool) -> bool:
    value = raw(name)
    if value is None:
        return default
    lowered = value.strip().lower()
    if lowered in _TRUE:
        return True
    if lowered in _FALSE:
        return False
    raise ImproperlyConfigured(
        f"{name} must be a boolean (one of 1/0, true/false, yes/no, on/off), got {value!r}"
    )


def integer(name: str, default: int, *, minimum: int | None = None) -> int:
    value = raw(name)
    if value is None or value.strip() == "":
        return default
    try:
        number = int(value)
    except ValueError as exc:
        raise ImproperlyConfigured(f"{name} must be an integer, got {value!r}") from exc
    if minimum is not None and number < minimum:
        raise ImproperlyConfigured(f"{name} must be at least {minimum}, got {number}")
    return number


def number(name: str, default: float, *, minimum: float | None = None) -> float:
    value = raw(name)
    if value is None or value.strip() == "":
        return default
    try:
        result = float(value)
    except ValueError as exc:
        raise ImproperlyConfigured(f"{name} must be a number, got {value!r}") from exc
    if minimum is not None and result < minimum:
        raise ImproperlyConfigured(f"{name} must be at least {minimum}, got {result}")
    return result


def choice(name: str, default: str, choices: tuple[str, ...]) -> str:
    value = string(name, default).strip().lower()
    if value not in choices:
        raise ImproperlyConfigured(f"{name} must be one of {', '.join(choices)}, got {value!r}")
    return value


def string_list(name: str, default: list[str] | None = None) -> list[str]:
    value = raw(name)
    if value is None or value.strip() == "":
        return list(default or [])
    return [item.strip() for item in value.split(",") if item.strip()]


def url(name: str, schemes: tuple[str, ...], default: str | None = None) -> str | None:
    """A URL whose scheme must be one of ``schemes``; ``None`` when unset and no default."""
    value = optional(name) or default
    if value is None:
        return None
    parts = urlsplit(value)
    if parts.scheme not in schemes or not (parts.hostname or parts.path):
        raise ImproperlyConfigured(
            f"{name} must be a URL starting with {' or '.join(s + '://' for s in schemes)}, "
            f"got a value with scheme {parts.scheme!r}"
        )
    return value


def hostname(name: str, default: str) -> str:
    value = string(name, default).strip().lower().rstrip(".")
    labels = value.split(".")
    if not all(label and len(label) <= 63 and _is_label(label) for label in labels):
        raise ImproperlyConfigured(
            f"{name} must be a host name such as eva.example.com, got {value!r}"
        )
    return value


def _is_label(label: str) -> bool:
    return label.replace("-", "").isalnum() and label.isascii() and not label.startswith("-")
