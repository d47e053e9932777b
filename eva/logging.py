"""Log context: every record carries the tenant schema, the request id and the Celery task id."""

from __future__ import annotations

import contextvars
import logging

request_id_var: contextvars.ContextVar[str] = contextvars.ContextVar("request_id", default="-")


class ContextFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = request_id_var.get()
        record.tenant = _current_schema()
        record.task_id = _current_task_id()
        return True


def _current_schema() -> str:
    try:
        from eva.db import current_schema

        return current_schema()
    except Exception:  # settings not configured yet (early start-up logs)
        return "-"


def _current_task_id() -> str:
    try:
        from celery import current_task

        if current_task and current_task.request and current_task.request.id:
            return str(current_task.request.id)
    except Exception:  # noqa: S110 - logging must never fail because Celery is absent
        pass
    return "-"


class ReadinessProbeFilter(logging.Filter):
    """For ``django.server`` (the development server's access log), which logs every 5xx at
    ERROR: /readyz answers 503 while `make run`'s workers start, and the health middleware
    already says once, as a WARNING, which checks fail. That access line stays, at INFO (and
    goes when the level is above INFO)."""

    def filter(self, record: logging.LogRecord) -> bool:
        # The record's first argument is the request line: "GET /readyz HTTP/1.1".
        line = str(record.args[0]) if isinstance(record.args, tuple) and record.args else ""
        parts = line.split()
        path = parts[1].split("?")[0] if len(parts) > 1 else ""
        if getattr(record, "status_code", None) == 503 and path.rstrip("/") == "/readyz":
            record.levelno, record.levelname = logging.INFO, "INFO"
            return logging.getLogger("django.server").getEffectiveLevel() <= logging.INFO
        return True
