"""The Celery app. Tasks run in the tenant schema they were sent from (tenant-schemas-celery).

Queues are declared and routed here, in one place: ``agent`` (replies), ``embedding``
(documents), ``transcription`` (voice notes) and ``dlq`` (dead letters). Reliability settings
(late ack, prefetch 1, time limits below the Redis visibility timeout) are the ``CELERY_*``
values in eva/settings.py.
"""

from __future__ import annotations

import os

from kombu import Queue
from tenant_schemas_celery.app import CeleryApp

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "eva.settings")

QUEUES = ("agent", "embedding", "transcription", "dlq", "webhooks")


def _task_modules() -> list[str]:
    """Every module in workers/ (one per queue duty), so every worker registers every task."""
    import pkgutil

    import workers

    skip = {"base", "tests"}
    return [
        f"workers.{module.name}"
        for module in pkgutil.iter_modules(workers.__path__)
        if module.name not in skip and not module.name.startswith("_")
    ]


app = CeleryApp("eva")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.conf.task_queues = [Queue(name) for name in QUEUES]
app.conf.task_default_queue = "agent"
app.conf.task_routes = {
    "workers.embedding.*": {"queue": "embedding"},
    "workers.transcription.*": {"queue": "transcription"},
    "workers.dlq.*": {"queue": "dlq"},
    "workers.agent.*": {"queue": "agent"},
    # Replies are handed to the gateway right after the agent produced them.
    "workers.delivery.*": {"queue": "agent"},
    "workers.diagnostics.*": {"queue": "agent"},
    "workers.webhooks.*": {"queue": "webhooks"},
}
app.conf.imports = _task_modules()
