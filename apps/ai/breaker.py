"""Circuit breaker per provider and model, with its state in Redis (shared by every process).

After AI_BREAKER_THRESHOLD transient failures in a row (each counted within twice the
cool-down), the circuit opens: the route skips that provider for AI_BREAKER_COOLDOWN_SECONDS,
then lets calls through again (a failure re-opens it once the threshold is reached again; a
success closes it). Failures made with a tenant's own key only open that tenant's circuit (its
key may be the problem); failures with the platform's key open it for every tenant.

If Redis itself is down the breaker stays closed: calls go through rather than failing.
"""

from __future__ import annotations

import contextlib
import logging
from functools import lru_cache

import redis
from django.conf import settings

logger = logging.getLogger(__name__)


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
    _, open_key = _keys(scope, provider, model)
    try:
        return bool(_redis().exists(open_key))
    except redis.RedisError:
        logger.warning("circuit breaker state unavailable; treating as closed")
        return False


def record_failure(*, scope: str, provider: str, model: str) -> bool:
    """Count a transient failure; returns True when this failure opened the circuit."""
    failures_key, open_key = _keys(scope, provider, model)
    cooldown = settings.AI_BREAKER_COOLDOWN_SECONDS
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
            logger.warning(
                "circuit opened", extra={"provider": provider, "model": model, "scope": scope}
            )
            return True
    except redis.RedisError:
        logger.warning("circuit breaker state unavailable; failure not counted")
    return False


def record_success(*, scope: str, provider: str, model: str) -> None:
    failures_key, _ = _keys(scope, provider, model)
    with contextlib.suppress(redis.RedisError):
        _redis().delete(failures_key)


def reset(*, scope: str, provider: str, model: str) -> None:
    """Close the circuit now (operators, tests)."""
    with contextlib.suppress(redis.RedisError):
        _redis().delete(*_keys(scope, provider, model))
