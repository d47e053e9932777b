"""/healthz and /readyz, with a real database, Valkey and Celery worker."""

from __future__ import annotations

import logging
import socket

import pytest
from django.test import Client

pytestmark = pytest.mark.django_db


def test_healthz_answers_on_any_host():
    for host in ("localhost", "alpha.localhost", "10.0.0.7"):
        response = Client().get("/healthz", HTTP_HOST=host)
        assert response.status_code == 200
        assert response.json() == {"status": "ok"}


def test_readyz_reports_every_dependency_when_all_are_up(world, celery_worker):
    response = Client().get("/readyz", HTTP_HOST="localhost")
    body = response.json()
    assert response.status_code == 200, body
    assert body["status"] == "ok"
    assert set(body["checks"]) == {"database", "migrations", "redis", "media", "worker"}
    assert all(check["ok"] for check in body["checks"].values())
    assert "worker(s) answering" in body["checks"]["worker"]["detail"]


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class _Records(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


def test_readyz_fails_when_redis_is_down(world, settings):
    settings.REDIS_URL = f"redis://127.0.0.1:{_closed_port()}/0"
    seen = _Records()
    loggers = [logging.getLogger(name) for name in ("django.request", "apps.ops.health")]
    for logger in loggers:
        logger.addHandler(seen)
    try:
        response = Client().get("/readyz", HTTP_HOST="localhost")
    finally:
        for logger in loggers:
            logger.removeHandler(seen)
    # One warning naming what is not ready; no "Service Unavailable" error line.
    assert [(r.name, r.levelname) for r in seen.records] == [("apps.ops.health", "WARNING")]
    assert "redis" in seen.records[0].getMessage()
    body = response.json()
    assert response.status_code == 503
    assert body["status"] == "fail"
    assert body["checks"]["redis"]["ok"] is False
    assert "ConnectionError" in body["checks"]["redis"]["detail"]
    assert body["checks"]["database"]["ok"] is True
    assert body["checks"]["worker"]["ok"] is False


def test_responses_carry_a_request_id():
    response = Client().get("/healthz", HTTP_X_REQUEST_ID="abc-123")
    assert response["X-Request-ID"] == "abc-123"
    generated = Client().get("/healthz", HTTP_X_REQUEST_ID="bad id with spaces")
    assert len(generated["X-Request-ID"]) == 32
