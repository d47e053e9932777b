"""The dlq queue's duty: the dlq-monitor (beat runs it every EVA_DLQ_MONITOR_INTERVAL seconds)."""

from __future__ import annotations

from dataclasses import asdict

from apps.ops.monitor import dead_letters_monitor
from eva.celery import app
from workers.base import PlatformTask


@app.task(
    name="workers.dlq.monitor_dead_letters",
    base=PlatformTask,
    dead_letters=False,
    max_retries=0,
    # A run stuck longer than the interval is pointless: the next tick starts a fresh one.
    expires=300,
)
def monitor_dead_letters() -> dict[str, object]:
    """Log, count and (optionally) report new dead letters; see apps/ops/monitor.py."""
    return asdict(dead_letters_monitor())
