"""dlq-monitor: consume the dead-letter stream, log each failure as one JSON line, count, alert.

Run by beat every ``EVA_DLQ_MONITOR_INTERVAL`` seconds on the ``dlq`` queue
(workers/dlq.py) or by hand (``manage.py dlq monitor``). It reads ``eva:deadletters`` in the
consumer group ``dlq-monitor``, so several monitors never report an entry twice, and entries a
crashed monitor left pending are claimed again after a minute.

Per entry it writes one log line on the ``eva.dlq`` logger (JSON in production: Loki alerts on
``logger="eva.dlq"``), adds one to the per-task and per-tenant counters, and — for a failure
whose record could not be stored because PostgreSQL was down — stores it now. When
``EVA_DLQ_WEBHOOK_URL`` is set, a summary of the batch is POSTed there, signed with
HMAC-SHA256 over the body using ``EVA_DLQ_WEBHOOK_SECRET`` (header
``X-EVA-Signature: sha256=<hex>``), retried with backoff.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import socket
import time
import urllib.error
import urllib.request
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import redis
from django.conf import settings
from django.utils import timezone

from apps.ops.stream import (
    COUNTS_BY_TASK,
    COUNTS_BY_TENANT,
    DEAD_LETTER_STREAM,
    MONITOR_GROUP,
    redis_client,
)

logger = logging.getLogger("eva.dlq")
CLAIM_IDLE_MS = 60_000
SUMMARY_ITEMS = 20


@dataclass
class MonitorReport:
    seen: int = 0
    logged: int = 0
    stored: int = 0
    by_task: dict[str, int] = field(default_factory=dict)
    by_tenant: dict[str, int] = field(default_factory=dict)
    webhook: str = "off"  # off | sent | failed | nothing to send


def _ensure_group(client: redis.Redis) -> None:
    try:
        client.xgroup_create(DEAD_LETTER_STREAM, MONITOR_GROUP, id="0", mkstream=True)
    except redis.ResponseError as exc:
        if "BUSYGROUP" not in str(exc):
            raise


def _read(client: redis.Redis, consumer: str, count: int) -> list[tuple[str, dict[str, str]]]:
    # Entries another monitor took but never acknowledged (it crashed) come first.
    claimed: Any = client.xautoclaim(
        DEAD_LETTER_STREAM, MONITOR_GROUP, consumer, CLAIM_IDLE_MS, "0-0", count=count
    )
    entries = [(entry_id, fields) for entry_id, fields in claimed[1] if fields]
    response: Any = client.xreadgroup(
        MONITOR_GROUP, consumer, {DEAD_LETTER_STREAM: ">"}, count=count
    )
    for _stream, items in response or []:
        entries.extend((entry_id, fields) for entry_id, fields in items if fields)
    return entries


def _store_unstored(fields: dict[str, str]) -> dict[str, str]:
    """A failure recorded while PostgreSQL was down: store it now (raises if still down)."""
    from apps.ops.services import dead_letter_record

    record = json.loads(fields["record"])
    dead_letter = dead_letter_record(
        source=record.get("source", "task"),
        name=record["name"],
        payload=record.get("payload") or {},
        tenant_schema=record.get("tenant_schema"),
        error=record.get("error", ""),
        attempts=int(record.get("attempts") or 1),
        exception_type=record.get("exception_type", ""),
        traceback=record.get("traceback", ""),
        task_id=record.get("task_id", ""),
        worker_host=record.get("worker_host", ""),
    )
    return {
        "event": "dead_letter",
        "id": str(dead_letter.pk),
        "source": dead_letter.source,
        "name": dead_letter.name,
        "tenant": dead_letter.tenant_schema or "public",
        "exception_type": dead_letter.exception_type,
        "error": dead_letter.error[:2000],
        "attempts": str(dead_letter.attempts),
        "task_id": dead_letter.task_id,
        "at": dead_letter.last_failed_at.isoformat(),
        "stored_late": "1",
    }


def dead_letters_monitor(*, consumer: str | None = None, batch: int = 500) -> MonitorReport:
    """Process what is new on the dead-letter stream; returns what was seen."""
    client = redis_client()
    consumer = consumer or f"{socket.gethostname()}"
    _ensure_group(client)
    report = MonitorReport()
    items: list[dict[str, str]] = []
    for entry_id, fields in _read(client, consumer, batch):
        report.seen += 1
        if fields.get("event") == "unstored":
            try:
                fields = _store_unstored(fields)
            except Exception:
                # Still cannot store it: leave it pending; the next run claims it again.
                logger.exception("dead letter still cannot be stored; kept on the stream")
                continue
            report.stored += 1
        task = fields.get("name", "?")
        tenant = fields.get("tenant", "public")
        logger.error(
            "dead letter",
            extra={
                "event": fields.get("event", "dead_letter"),
                "dead_letter_id": fields.get("id"),
                "source": fields.get("source"),
                "task": task,
                "tenant_schema": tenant,
                "exception_type": fields.get("exception_type"),
                "error": fields.get("error"),
                "attempts": int(fields.get("attempts") or 0),
                "task_id": fields.get("task_id"),
                "failed_at": fields.get("at"),
                "stream_id": entry_id,
            },
        )
        pipe = client.pipeline()
        pipe.hincrby(COUNTS_BY_TASK, task, 1)
        pipe.hincrby(COUNTS_BY_TENANT, tenant, 1)
        pipe.xack(DEAD_LETTER_STREAM, MONITOR_GROUP, entry_id)
        pipe.execute()
        report.logged += 1
        items.append(fields)
    report.by_task = dict(Counter(item.get("name", "?") for item in items))
    report.by_tenant = dict(Counter(item.get("tenant", "public") for item in items))
    if settings.EVA_DLQ_WEBHOOK_URL:
        report.webhook = _notify(items, report) if items else "nothing to send"
    return report


def sign(body: bytes, secret: str) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def _notify(items: list[dict[str, str]], report: MonitorReport) -> str:
    """POST the batch summary to the operator webhook; retried with backoff, never raises."""
    body = json.dumps(
        {
            "type": "eva.dead_letters",
            "sent_at": timezone.now().isoformat(),
            "count": len(items),
            "by_task": report.by_task,
            "by_tenant": report.by_tenant,
            "items": [
                {
                    key: item.get(key)
                    for key in ("id", "name", "tenant", "exception_type", "error", "attempts", "at")
                }
                for item in items[:SUMMARY_ITEMS]
            ],
        },
        sort_keys=True,
    ).encode()
    headers = {"Content-Type": "application/json", "User-Agent": "eva-dlq-monitor"}
    secret = settings.EVA_DLQ_WEBHOOK_SECRET
    if secret:
        headers["X-EVA-Signature"] = sign(body, secret)
    attempts = int(settings.EVA_DLQ_WEBHOOK_ATTEMPTS)
    for attempt in range(1, attempts + 1):
        request = urllib.request.Request(  # noqa: S310 - the URL is validated as http(s) by settings
            str(settings.EVA_DLQ_WEBHOOK_URL), data=body, headers=headers, method="POST"
        )
        try:
            with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310
                if 200 <= response.status < 300:
                    return "sent"
                problem = f"HTTP {response.status}"
        except urllib.error.HTTPError as exc:
            problem = f"HTTP {exc.code}"
        except (urllib.error.URLError, OSError) as exc:
            problem = f"{type(exc).__name__}: {exc}"
        logger.warning("dlq webhook attempt %s/%s failed: %s", attempt, attempts, problem)
        if attempt < attempts:
            time.sleep(min(8.0, 0.5 * 2 ** (attempt - 1)))
    return "failed"


def monitor_counts() -> dict[str, dict[str, int]]:
    """Counters the monitor keeps (since Redis was last emptied): per task and per tenant."""
    client = redis_client()
    by_task: Any = client.hgetall(COUNTS_BY_TASK)
    by_tenant: Any = client.hgetall(COUNTS_BY_TENANT)
    return {
        "by_task": {str(k): int(v) for k, v in by_task.items()},
        "by_tenant": {str(k): int(v) for k, v in by_tenant.items()},
    }
