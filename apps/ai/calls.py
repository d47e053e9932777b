"""One routed provider call: timeout, retries with exponential backoff and jitter, breaker."""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from typing import TypeVar

from django.conf import settings

from . import breaker
from .errors import ProviderError

T = TypeVar("T")

# Never sleep longer than this between two attempts of one turn: a customer is waiting.
MAX_BACKOFF_SECONDS = 8.0


class AttemptsExhausted(Exception):
    def __init__(self, error: ProviderError, attempts: int) -> None:
        super().__init__(str(error))
        self.error = error
        self.attempts = attempts


def backoff_seconds(attempt: int) -> float:
    """Delay before retry number ``attempt`` (1-based): base * 2^(attempt-1), jittered ±50%."""
    base = settings.AI_RETRY_BASE_SECONDS * (2 ** (attempt - 1))
    return min(MAX_BACKOFF_SECONDS, base * random.uniform(0.5, 1.5))  # noqa: S311 - jitter only


def call_with_retries(
    fn: Callable[[], T], *, scope: str, provider: str, model: str
) -> tuple[T, int]:
    """Run ``fn`` until it succeeds, retrying transient ProviderErrors AI_MAX_RETRIES times.

    Returns (result, attempts). Raises AttemptsExhausted (with the last error) otherwise; a
    call that ends in a transient failure counts once towards the circuit breaker.
    """
    attempts = 0
    while True:
        attempts += 1
        try:
            result = fn()
        except ProviderError as exc:
            if exc.transient and attempts <= settings.AI_MAX_RETRIES:
                time.sleep(backoff_seconds(attempts))
                continue
            if exc.transient:
                breaker.record_failure(scope=scope, provider=provider, model=model)
            raise AttemptsExhausted(exc, attempts) from None
        breaker.record_success(scope=scope, provider=provider, model=model)
        return result, attempts
