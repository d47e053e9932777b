"""Liveness (/healthz) and readiness (/readyz) with a JSON body per dependency."""

from __future__ import annotations

import time
from collections.abc import Callable

import redis
from django.conf import settings
from django.db import DEFAULT_DB_ALIAS, connection, connections
from django.db.migrations.executor import MigrationExecutor
from django.http import HttpRequest, JsonResponse

from eva.db import use_public_schema


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


CHECKS: dict[str, Callable[[], str]] = {
    "database": _check_database,
    "migrations": _check_migrations,
    "redis": _check_redis,
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


def readyz(request: HttpRequest) -> JsonResponse:
    ok, checks = readiness()
    return JsonResponse(
        {"status": "ok" if ok else "fail", "checks": checks}, status=200 if ok else 503
    )
