"""The Redis side of dead letters: the dead-letter stream the monitor consumes, and counters.

Every dead letter (new, or failing again after a replay) is appended to ``eva:deadletters`` so the
dlq-monitor can log and count it without polling PostgreSQL. When PostgreSQL itself is what
failed, the entry carries the full record instead of a database id and the monitor stores it
once the database is back: the stream is the safety net that makes "nothing lost" hold.
"""

from __future__ import annotations

import json
import logging
from functools import lru_cache
from typing import Any

import redis
from django.conf import settings

DEAD_LETTER_STREAM = "eva:deadletters"
MONITOR_GROUP = "dlq-monitor"
COUNTS_BY_TASK = "eva:dlq:counts:task"
COUNTS_BY_TENANT = "eva:dlq:counts:tenant"
# The monitor reads the stream; old entries are trimmed so it cannot grow without bound.
STREAM_MAXLEN = 100_000

logger = logging.getLogger("eva.dlq")


@lru_cache(maxsize=4)
def _client_for(url: str) -> redis.Redis:
    return redis.Redis.from_url(
        url, socket_connect_timeout=2, socket_timeout=5, decode_responses=True
    )


def redis_client() -> redis.Redis:
    """A shared client for settings.REDIS_URL (decoded strings)."""
    return _client_for(str(settings.REDIS_URL))


def dead_letter_publish(event: dict[str, Any]) -> str | None:
    """Append one event to the dead-letter stream; returns its id, or None if Redis is down.

    A failure here never hides the dead letter: the caller has stored it (or logs it whole).
    """
    fields = {
        key: value if isinstance(value, str) else json.dumps(value, default=str)
        for key, value in event.items()
        if value is not None
    }
    try:
        return str(
            redis_client().xadd(
                DEAD_LETTER_STREAM,
                fields,  # type: ignore[arg-type]
                maxlen=STREAM_MAXLEN,
                approximate=True,
            )
        )
    except redis.RedisError as exc:
        logger.error(
            "dead letter not published to the stream: %s",
            exc,
            extra={"dead_letter": fields},
        )
        return None
