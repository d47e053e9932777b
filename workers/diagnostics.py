"""Diagnostic tasks used by operators and tests: schema routing, retries and dead letters."""

from __future__ import annotations

import os
import time

from celery.exceptions import SoftTimeLimitExceeded

from apps.accounts.selectors import user_list
from apps.ops.stream import redis_client
from eva.celery import app
from eva.db import current_schema
from workers.base import PlatformTask, TenantBoundTask, TransientError

# Keys the failure diagnostics keep their state under, so a test (or an operator) can "fix the
# cause" of a failing task and read what happened without a table of its own.
DIAG_PREFIX = "eva:diag"


@app.task(name="workers.diagnostics.ping", base=PlatformTask)
def ping() -> str:
    return "pong"


@app.task(name="workers.diagnostics.tenant_probe", base=TenantBoundTask)
def tenant_probe() -> dict[str, object]:
    """Report the schema the task ran in and the users it sees there."""
    return {
        "schema": current_schema(),
        "users": list(user_list().values_list("email", flat=True)),
    }


@app.task(
    name="workers.diagnostics.flaky",
    base=TenantBoundTask,
    backoff_base=0.2,
    backoff_cap=1.0,
)
def flaky(key: str, failures: int) -> dict[str, object]:
    """Fail transiently the first ``failures`` runs for ``key``, then succeed."""
    runs = int(redis_client().incr(f"{DIAG_PREFIX}:flaky:{key}"))
    if runs <= failures:
        raise TransientError(f"simulated outage {runs} of {failures}")
    return {"schema": current_schema(), "runs": runs}


@app.task(name="workers.diagnostics.fails_until_fixed", base=TenantBoundTask)
def fails_until_fixed(key: str, note: str = "") -> dict[str, object]:
    """Fail permanently until ``<prefix>:fixed:<key>`` exists; then record the schema it ran in."""
    client = redis_client()
    if not client.exists(f"{DIAG_PREFIX}:fixed:{key}"):
        raise ValueError(f"cause not fixed for {key}")
    client.rpush(f"{DIAG_PREFIX}:ran:{key}", current_schema())
    return {"schema": current_schema(), "note": note}


@app.task(name="workers.diagnostics.effect_once", base=TenantBoundTask)
def effect_once(key: str, seconds: float) -> str:
    """A slow task with an idempotent side effect: however often it runs, the effect is once.

    Runs are counted before the pause; the effect is guarded by SET NX, the same way a real task
    guards a side effect with a unique key or a state check.
    """
    client = redis_client()
    client.incr(f"{DIAG_PREFIX}:runs:{key}")
    time.sleep(seconds)
    if client.set(f"{DIAG_PREFIX}:effect-done:{key}", "1", nx=True):
        client.incr(f"{DIAG_PREFIX}:effects:{key}")
    return current_schema()


@app.task(name="workers.diagnostics.sleep", base=TenantBoundTask)
def sleep(seconds: float) -> float:
    """Sleep; used to exceed a time limit."""
    time.sleep(seconds)
    return seconds


@app.task(name="workers.diagnostics.stuck", base=TenantBoundTask)
def stuck(key: str, seconds: float) -> str:
    """Ignore the soft time limit (like code stuck in a C call) so only the hard limit ends it."""
    client = redis_client()
    client.incr(f"{DIAG_PREFIX}:runs:{key}")
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            time.sleep(max(0.0, deadline - time.monotonic()))
        except SoftTimeLimitExceeded:
            continue
    client.incr(f"{DIAG_PREFIX}:effects:{key}")
    return current_schema()


@app.task(name="workers.diagnostics.exit_process", base=TenantBoundTask)
def exit_process(key: str) -> None:
    """Kill the process running it, as an out-of-memory kill would (tests of lost workers).

    Only for a prefork worker on a queue of its own: in a solo-pool worker it ends the worker.
    """
    redis_client().incr(f"{DIAG_PREFIX}:runs:{key}")
    os._exit(13)
