"""Errors of the model layer. Messages never contain keys or request bodies."""

from __future__ import annotations


class AIError(Exception):
    """Base class for failures of the model layer."""


class ProviderError(AIError):
    """A provider call failed.

    ``transient`` errors (timeouts, 429, 5xx, connection resets) are retried with backoff and
    count towards the circuit breaker; permanent ones (400, 401, 404) move straight to the next
    route entry.
    """

    def __init__(self, message: str, *, transient: bool, status: int | None = None) -> None:
        super().__init__(message)
        self.transient = transient
        self.status = status


class InvalidOutput(AIError):
    """The model answered, but not with JSON matching the requested schema."""


class EmbeddingUnavailable(AIError):
    """The active embedding model could not be reached after retries.

    Embeddings never fall back to another model: vectors of different models are not comparable,
    so the caller (a Celery task) retries later instead.
    """

    def __init__(self, message: str, *, attempts: int = 1) -> None:
        super().__init__(message)
        self.attempts = attempts
