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
