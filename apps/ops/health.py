"""Liveness (/healthz) and readiness (/readyz) with a JSON body per dependency."""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import redis
from django.conf import settings
from django.db import DEFAULT_DB_ALIAS, connection, connections
from django.db.migrations.executor import MigrationExecutor
from django.http import HttpRequest, JsonResponse

from eva.db import use_public_schema
from eva.media import bucket_check

logger = logging.getLogger(__name__)


def healthz(request: HttpRequest) -> JsonResponse:
    return JsonResponse({"status": "ok"})


def _check_database() -> str:
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
    return "reachable"


def _check_migrations() -> str:
    use_public_schema()
    executor = MigrationExecutor(connections[DEFAULT_DB_ALIAS])
    plan = executor.migration_plan(executor.loader.graph.leaf_nodes())
    if plan:
        raise RuntimeError(f"{len(plan)} migration(s) not applied to the public schema")
    return "applied"


def _check_redis() -> str:
    client = redis.Redis.from_url(
        str(settings.REDIS_URL), socket_connect_timeout=1, socket_timeout=1
    )
    try:
        client.ping()
    finally:
        client.close()
    return "reachable"


def _check_worker() -> str:
    from eva.celery import app

    replies = app.control.ping(timeout=1.0, limit=1)
    if not replies:
        raise RuntimeError("no Celery worker answered within 1 s")
    return f"{len(replies)} worker(s) answering"


def _check_media() -> str:
    """The media storage answers: the bucket exists and these credentials may use it, or the
    folder is writable (voice notes and uploads are stored there)."""
    if settings.EVA_MEDIA_STORAGE == "s3":
        bucket_check(timeout=1.0)
        return f"bucket {settings.EVA_S3_BUCKET!r} reachable"
    root = Path(settings.MEDIA_ROOT)
    if not os.access(root if root.exists() else root.parent, os.W_OK):
        raise RuntimeError(f"{root} is not writable")
    return "folder writable"


CHECKS: dict[str, Callable[[], str]] = {
    "database": _check_database,
    "migrations": _check_migrations,
    "redis": _check_redis,
    "media": _check_media,
    "worker": _check_worker,
}


def readiness() -> tuple[bool, dict[str, dict[str, object]]]:
    results: dict[str, dict[str, object]] = {}
    for name, check in CHECKS.items():
        if name == "worker" and not settings.EVA_READYZ_REQUIRE_WORKER:
            continue
        if name == "worker" and not results.get("redis", {}).get("ok"):
            results[name] = {"ok": False, "detail": "skipped: Redis is down"}
            continue
        started = time.perf_counter()
        try:
            detail = check()
            ok = True
        except Exception as exc:
            detail, ok = f"{type(exc).__name__}: {exc}", False
        results[name] = {
            "ok": ok,
            "detail": detail,
            "ms": round((time.perf_counter() - started) * 1000, 1),
        }
    return all(r["ok"] for r in results.values()), results


# --- Metrics for operators (not readiness: a long queue does not make EVA unready) -----------

# kombu's Redis transport keeps one list per queue and priority step; priority 0 is the bare name.
_PRIORITY_SEP = "\x06\x16"
_PRIORITY_STEPS = (3, 6, 9)


def queue_metrics(queues: tuple[str, ...] | None = None) -> dict[str, int]:
    """Messages waiting per Celery queue, plus ``unacked``: taken by a worker, not yet done."""
    from eva.celery import QUEUES

    queues = queues or QUEUES
    client = redis.Redis.from_url(
        str(settings.CELERY_BROKER_URL), socket_connect_timeout=1, socket_timeout=1
    )
    try:
        pipe = client.pipeline()
        for queue in queues:
            pipe.llen(queue)
            for step in _PRIORITY_STEPS:
                pipe.llen(f"{queue}{_PRIORITY_SEP}{step}")
        pipe.hlen("unacked")
        values = [int(v) for v in pipe.execute()]
    finally:
        client.close()
    per_queue = len(_PRIORITY_STEPS) + 1
    depths = {
        queue: sum(values[i * per_queue : (i + 1) * per_queue]) for i, queue in enumerate(queues)
    }
    depths["unacked"] = values[-1]
    return depths


def _stream_id_ms(entry_id: str) -> int:
    return int(str(entry_id).split("-", 1)[0])


def inbound_metrics() -> dict[str, object]:
    """The inbound stream: entries not yet read by each group and the oldest unacknowledged."""
    stream = f"{getattr(settings, 'EVA_STREAM_PREFIX', 'eva')}:inbound"
    client = redis.Redis.from_url(
        str(settings.REDIS_URL), socket_connect_timeout=1, socket_timeout=1, decode_responses=True
    )
    try:
        if not client.exists(stream):
            return {"stream": stream, "length": 0, "groups": {}}
        now_ms = int(time.time() * 1000)
        groups: dict[str, dict[str, object]] = {}
        for group in client.xinfo_groups(stream):
            summary: Any = client.xpending(stream, group["name"])
            oldest = summary.get("min") if summary and summary.get("pending") else None
            groups[str(group["name"])] = {
                "pending": int(group.get("pending") or 0),
                "lag": group.get("lag"),
                "oldest_pending_age_s": round((now_ms - _stream_id_ms(oldest)) / 1000, 1)
                if oldest
                else None,
            }
        return {"stream": stream, "length": int(client.xlen(stream)), "groups": groups}
    finally:
        client.close()


def dead_letter_metrics() -> dict[str, object]:
    from apps.ops.selectors import dead_letter_counts

    counts = dead_letter_counts()
    return {
        "new": counts["by_status"]["new"],  # type: ignore[index]
        "last_hour": counts["last_hour"],
    }


METRICS: dict[str, Callable[[], object]] = {
    "queues": queue_metrics,
    "dead_letters": dead_letter_metrics,
    "inbound": inbound_metrics,
}


def metrics() -> dict[str, object]:
    """Operator figures; each is independent, a failing one reports its error instead."""
    values: dict[str, object] = {}
    for name, read in METRICS.items():
        try:
            values[name] = read()
        except Exception as exc:
            values[name] = {"error": f"{type(exc).__name__}: {exc}"}
    return values


def readyz(request: HttpRequest) -> JsonResponse:
    ok, checks = readiness()
    response = JsonResponse(
        {"status": "ok" if ok else "fail", "checks": checks, "metrics": metrics()},
        status=200 if ok else 503,
    )
    if not ok:
        # "Not ready" is the probe's answer, not a server error: one warning naming the failing
        # checks instead of django.request's ERROR line (make run polls this while it starts).
        failing = {name: check.get("detail") for name, check in checks.items() if not check["ok"]}
        logger.warning("not ready: %s", failing, extra={"failing": sorted(failing)})
        response._has_been_logged = True  # type: ignore[attr-defined]
    return response
