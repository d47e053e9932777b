"""Circuit breaker per provider and model, with its state in Redis (shared by every process).

After AI_BREAKER_THRESHOLD transient failures in a row (each counted within twice the
cool-down), the circuit opens: the route skips that provider for AI_BREAKER_COOLDOWN_SECONDS,
then lets calls through again (a failure re-opens it once the threshold is reached again; a
success closes it). Failures made with a tenant's own key only open that tenant's circuit (its
key may be the problem); failures with the platform's key open it for every tenant.

If Redis itself is down the breaker stays closed: calls go through rather than failing.

Each process remembers a circuit's state for LOCAL_TTL_SECONDS, so a healthy provider costs one
Redis round trip per second per process instead of two per call (under load those round trips
were most of the router's overhead: bench/ai_router.py). Another process's opening of a circuit
is therefore seen up to that long later; this process's own failures take effect at once.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from functools import lru_cache

import redis
from django.conf import settings

logger = logging.getLogger(__name__)

LOCAL_TTL_SECONDS = 1.0

# (scope, provider, model) -> (checked_at, circuit open, failures counted)
_seen: dict[tuple[str, str, str], tuple[float, bool, bool]] = {}
_seen_lock = threading.Lock()


def _remember(key: tuple[str, str, str], is_open: bool, has_failures: bool) -> None:
    with _seen_lock:
        _seen[key] = (time.monotonic(), is_open, has_failures)


def _forget(key: tuple[str, str, str]) -> None:
    with _seen_lock:
        _seen.pop(key, None)


def _fresh(key: tuple[str, str, str]) -> tuple[bool, bool] | None:
    entry = _seen.get(key)
    if entry is None or time.monotonic() - entry[0] > LOCAL_TTL_SECONDS:
        return None
    return entry[1], entry[2]


@lru_cache(maxsize=1)
def _client(url: str) -> redis.Redis:
    return redis.Redis.from_url(url, socket_timeout=0.5, socket_connect_timeout=0.5)


def _redis() -> redis.Redis:
    return _client(settings.REDIS_URL)


def scope_for(key_source: str, schema: str) -> str:
    return f"tenant:{schema}" if key_source == "tenant" else "platform"


def _keys(scope: str, provider: str, model: str) -> tuple[str, str]:
    base = f"eva:ai:breaker:{scope}:{provider}:{model}"
    return f"{base}:failures", f"{base}:open"


def is_open(*, scope: str, provider: str, model: str) -> bool:
    cached = _fresh((scope, provider, model))
    if cached is not None:
        return cached[0]
    failures_key, open_key = _keys(scope, provider, model)
    try:
        opened, failures = _redis().mget([open_key, failures_key])
    except redis.RedisError:
        logger.warning("circuit breaker state unavailable; treating as closed")
        return False
    _remember((scope, provider, model), opened is not None, failures is not None)
    return opened is not None


def record_failure(*, scope: str, provider: str, model: str) -> bool:
    """Count a transient failure; returns True when this failure opened the circuit."""
    failures_key, open_key = _keys(scope, provider, model)
    cooldown = settings.AI_BREAKER_COOLDOWN_SECONDS
    _forget((scope, provider, model))
    try:
        pipe = _redis().pipeline()
        pipe.incr(failures_key)
        pipe.expire(failures_key, cooldown * 2)
        count = int(pipe.execute()[0])
        if count >= settings.AI_BREAKER_THRESHOLD:
            pipe = _redis().pipeline()
            pipe.set(open_key, "1", ex=cooldown)
            pipe.delete(failures_key)
            pipe.execute()
            _remember((scope, provider, model), True, False)
            logger.warning(
                "circuit opened", extra={"provider": provider, "model": model, "scope": scope}
            )
            return True
    except redis.RedisError:
        logger.warning("circuit breaker state unavailable; failure not counted")
    return False


def record_success(*, scope: str, provider: str, model: str) -> None:
    cached = _fresh((scope, provider, model))
    if cached is not None and not cached[1]:
        return  # no failures were counted: nothing to reset
    failures_key, _ = _keys(scope, provider, model)
    with contextlib.suppress(redis.RedisError):
        _redis().delete(failures_key)
    _remember((scope, provider, model), False, False)


def reset(*, scope: str, provider: str, model: str) -> None:
    """Close the circuit now (operators, tests)."""
    _forget((scope, provider, model))
    with contextlib.suppress(redis.RedisError):
        _redis().delete(*_keys(scope, provider, model))
