"""Start-up checks that the reliability settings really make "nothing lost" true.

Run by Django's check framework (every manage.py command, runserver, `manage.py check --deploy`)
and by every Celery worker at start (workers/base.py, ``worker_init``), which refuses to start on
an error.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.checks import CheckMessage, Error, Warning, register


def reliability_problems() -> list[CheckMessage]:
    problems: list[CheckMessage] = []
    hard = int(getattr(settings, "CELERY_TASK_TIME_LIMIT", 0) or 0)
    soft = int(getattr(settings, "CELERY_TASK_SOFT_TIME_LIMIT", 0) or 0)
    transport: dict[str, Any] = getattr(settings, "CELERY_BROKER_TRANSPORT_OPTIONS", {}) or {}
    visibility = int(transport.get("visibility_timeout", 3600))
    if not hard:
        problems.append(
            Error(
                "CELERY_TASK_TIME_LIMIT is not set: a stuck task would run forever.", id="ops.E001"
            )
        )
    elif hard >= visibility:
        problems.append(
            Error(
                f"CELERY_TASK_TIME_LIMIT ({hard}s) must be below the broker visibility timeout "
                f"({visibility}s), or Redis hands a task still running to a second worker.",
                id="ops.E002",
            )
        )
    if soft and hard and soft >= hard:
        problems.append(
            Error(
                f"CELERY_TASK_SOFT_TIME_LIMIT ({soft}s) must be below CELERY_TASK_TIME_LIMIT "
                f"({hard}s) so a task can fail cleanly (and be dead-lettered) before it is killed.",
                id="ops.E003",
            )
        )
    if not getattr(settings, "CELERY_TASK_ACKS_LATE", False):
        problems.append(
            Error(
                "CELERY_TASK_ACKS_LATE must be True: a task acknowledged before it ran is lost "
                "when its worker dies.",
                id="ops.E004",
            )
        )
    if not getattr(settings, "CELERY_TASK_REJECT_ON_WORKER_LOST", False):
        problems.append(
            Error(
                "CELERY_TASK_REJECT_ON_WORKER_LOST must be True so a task whose worker died is "
                "delivered again.",
                id="ops.E005",
            )
        )
    if getattr(settings, "CELERY_WORKER_PREFETCH_MULTIPLIER", 1) != 1:
        problems.append(
            Warning(
                "CELERY_WORKER_PREFETCH_MULTIPLIER should be 1: prefetched tasks wait behind a "
                "long one and are redelivered late if the worker dies.",
                id="ops.W001",
            )
        )
    return problems


@register("eva")
def reliability_check(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    return reliability_problems()
