"""What every chat provider adapter takes and returns."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol


@dataclass(frozen=True)
class Credentials:
    """A key and endpoint for one provider. ``source`` is "env", "tenant" or "none".

    ``repr`` hides the key so an accidental log line or traceback cannot leak it.
    """

    api_key: str | None = field(repr=False)
    base_url: str | None = None
    source: str = "none"


@dataclass(frozen=True)
class ProviderCall:
    model: str
    system: str
    # (role, text) with role "user" or "assistant", oldest first.
    messages: list[tuple[str, str]]
    response_schema: dict[str, Any] | None
    max_output_tokens: int
    timeout_s: float


@dataclass(frozen=True)
class ProviderReply:
    text: str
    tokens_in: int
    tokens_out: int
    finish_reason: str


class ChatProvider(Protocol):
    name: str

    def chat(self, call: ProviderCall, credentials: Credentials) -> ProviderReply: ...
