"""Lost workers and time limits on a real prefork worker: redelivered once, or dead-lettered.

A prefork worker of its own (the shared ``celery_worker`` runs the solo pool, which has no child
process to kill and no time limits) consumes a queue no other worker reads.
"""

from __future__ import annotations

import os
import signal
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from django_tenants.utils import tenant_context

from apps.ops.models import DeadLetter
from apps.ops.stream import redis_client
from apps.ops.tests.fixtures import committed_db, wait_until
from workers.diagnostics import DIAG_PREFIX, effect_once, exit_process, stuck
from workers.diagnostics import sleep as sleep_task

__all__ = ["committed_db"]
ROOT = Path(__file__).resolve().parents[2]
QUEUE = f"dlq-test-{os.getpid()}"
NODE = f"prefork-{os.getpid()}@{os.uname().nodename}"


@pytest.fixture(scope="module")
def prefork_worker(django_db_setup) -> Iterator[str]:
    from conftest import worker_process

    # Prefork: the task runs in a child process that the tests kill.
    with worker_process(queues=QUEUE, node=NODE, pool_args=("--pool=prefork", "--concurrency=1")):
        yield NODE


def counter(kind: str, key: str) -> int:
    return int(redis_client().get(f"{DIAG_PREFIX}:{kind}:{key}") or 0)


def child_pid_running(task_id: str) -> int | None:
    from eva.celery import app

    active = app.control.inspect(destination=[NODE], timeout=1).active() or {}
    for task in active.get(NODE, []):
        if task["id"] == task_id:
            return int(task["worker_pid"])
    return None


@pytest.mark.usefixtures("committed_db", "prefork_worker")
def test_kill_9_of_the_worker_child_runs_the_task_again_and_the_effect_happens_once(world):
    key = uuid.uuid4().hex
    with tenant_context(world.tenant_a):
        result = effect_once.apply_async(args=[key, 3], queue=QUEUE)
    wait_until(lambda: counter("runs", key) == 1, what="the first run to start")
    pid = wait_until(lambda: child_pid_running(result.id), what="the child running the task")
    os.kill(pid, signal.SIGKILL)

    assert result.get(timeout=60) == "alpha"  # delivered again, in the same tenant
    assert counter("runs", key) == 2
    assert counter("effects", key) == 1
    assert not DeadLetter.objects.filter(task_id=result.id).exists()


@pytest.mark.usefixtures("committed_db", "prefork_worker")
def test_a_task_that_kills_its_worker_every_time_is_dead_lettered_after_the_limit(world):
    key = uuid.uuid4().hex
    with tenant_context(world.tenant_b):
        result = exit_process.apply_async(args=[key], queue=QUEUE)
    dead = wait_until(
        lambda: DeadLetter.objects.filter(task_id=result.id).first(),
        timeout=90,
        what="the dead letter of the task that kills its worker",
    )
    assert dead.exception_type == "workers.base.DeliveryLimitExceeded"
    assert dead.tenant_schema == "beta"
    assert dead.attempts == 3  # EVA_TASK_MAX_DELIVERIES
    assert dead.payload["args"] == [key]
    assert counter("runs", key) == 3
    time.sleep(2)
    assert counter("runs", key) == 3  # not delivered again


@pytest.mark.usefixtures("committed_db", "prefork_worker")
def test_a_task_over_its_soft_time_limit_is_dead_lettered_not_retried(world):
    with tenant_context(world.tenant_a):
        result = sleep_task.apply_async(args=[30], queue=QUEUE, soft_time_limit=1, time_limit=10)
    dead = wait_until(lambda: DeadLetter.objects.filter(task_id=result.id).first())
    assert dead.exception_type.endswith(".SoftTimeLimitExceeded")
    assert dead.attempts == 1
    assert dead.tenant_schema == "alpha"


@pytest.mark.usefixtures("committed_db", "prefork_worker")
def test_a_task_killed_at_its_hard_time_limit_is_dead_lettered_once(world):
    key = uuid.uuid4().hex
    with tenant_context(world.tenant_a):
        # Celery arms the hard limit after the soft one fires; this task ignores the soft one.
        result = stuck.apply_async(args=[key, 60], queue=QUEUE, soft_time_limit=1, time_limit=3)
    dead = wait_until(lambda: DeadLetter.objects.filter(task_id=result.id).first())
    assert dead.exception_type.endswith(".TimeLimitExceeded")
    assert dead.tenant_schema == "alpha"  # from the delivery record; the headers died with it
    assert dead.payload["args"] == [key, 60]
    time.sleep(4)
    assert counter("runs", key) == 1  # acknowledged, not redelivered forever
    assert counter("effects", key) == 0
    assert DeadLetter.objects.filter(task_id=result.id).count() == 1


@pytest.mark.django_db
def test_the_test_database_is_set_up_for_this_module(world):
    """pytest-django sets up the test database only if a collected test asks for it."""
    assert DeadLetter.objects.filter(task_id="never-such-a-task").count() == 0
