"""Tasks retry transient errors with backoff and dead-letter what still fails (real worker)."""

from __future__ import annotations

import uuid

import pytest
from django_tenants.utils import tenant_context

from apps.ops.models import DeadLetter
from apps.ops.stream import redis_client
from apps.ops.tests.fixtures import committed_db, wait_until
from workers.base import TRANSIENT_EXCEPTIONS, TransientError, backoff_delay, is_transient
from workers.diagnostics import DIAG_PREFIX, fails_until_fixed, flaky, tenant_probe

# Tests with the worker use committed_db, not django_db: the worker and the code under test
# commit (row locks, on_commit hooks), and a transactional test case would flush the tenants
# every test shares. Records are keyed by unique ids, so tests do not see each other's.
with_worker = pytest.mark.usefixtures("committed_db", "celery_worker")


__all__ = ["committed_db"]


def wait_for_dead_letter(**filters: object) -> DeadLetter:
    return wait_until(
        lambda: DeadLetter.objects.filter(**filters).first(), what=f"a dead letter {filters}"
    )


@with_worker
def test_a_transient_failure_is_retried_and_succeeds_without_a_dead_letter(world):
    key = uuid.uuid4().hex
    with tenant_context(world.tenant_a):
        result = flaky.delay(key, 3)
    assert result.get(timeout=60) == {"schema": "alpha", "runs": 4}
    assert int(redis_client().get(f"{DIAG_PREFIX}:flaky:{key}")) == 4
    assert not DeadLetter.objects.filter(task_id=result.id).exists()


@with_worker
def test_transient_failures_beyond_the_limit_land_in_one_dead_letter(world):
    key = uuid.uuid4().hex
    with tenant_context(world.tenant_b):
        result = flaky.delay(key, 100)
    dead = wait_for_dead_letter(task_id=result.id)
    # default limit (EVA_TASK_MAX_RETRIES=5): the first run and five retries
    assert dead.attempts == 6
    assert int(redis_client().get(f"{DIAG_PREFIX}:flaky:{key}")) == 6
    assert dead.exception_type == "workers.base.TransientError"
    assert dead.tenant_schema == "beta"
    assert dead.payload["args"] == [key, 100]
    assert DeadLetter.objects.filter(task_id=result.id).count() == 1


@with_worker
def test_a_permanent_failure_is_dead_lettered_at_once_with_full_context(world):
    key = uuid.uuid4().hex
    with tenant_context(world.tenant_a):
        result = fails_until_fixed.apply_async(args=[key], kwargs={"note": "hello"})
    dead = wait_for_dead_letter(task_id=result.id)
    assert dead.source == "task"
    assert dead.name == "workers.diagnostics.fails_until_fixed"
    assert dead.tenant_schema == "alpha"
    assert dead.payload["args"] == [key]
    assert dead.payload["kwargs"] == {"note": "hello"}
    assert dead.payload["queue"] == "agent"
    assert dead.exception_type == "ValueError"
    assert dead.error == f"cause not fixed for {key}"
    assert "fails_until_fixed" in dead.traceback and "ValueError" in dead.traceback
    assert dead.attempts == 1
    assert dead.status == "new"
    assert dead.worker_host
    assert dead.first_failed_at <= dead.last_failed_at
    assert DeadLetter.objects.filter(task_id=result.id).count() == 1


@with_worker
def test_a_tenant_task_sent_without_a_tenant_is_dead_lettered_not_retried(world):
    result = tenant_probe.delay()  # from the public schema
    dead = wait_for_dead_letter(task_id=result.id)
    assert dead.exception_type == "workers.base.TenantRequiredError"
    assert dead.tenant_schema == ""
    assert dead.attempts == 1


@pytest.mark.django_db
def test_dead_letters_live_in_the_public_schema_only(world):
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT table_schema FROM information_schema.tables WHERE table_name = %s",
            ["ops_deadletter"],
        )
        assert [row[0] for row in cursor.fetchall()] == ["public"]


def test_transient_classification_and_backoff():
    from django.db import OperationalError
    from redis.exceptions import ConnectionError as RedisConnectionError

    assert is_transient(OperationalError("server closed the connection"))
    assert is_transient(RedisConnectionError("down"))
    assert is_transient(TimeoutError())
    assert is_transient(TransientError("503"))
    assert not is_transient(ValueError("bad input"))
    assert is_transient(KeyError("x"), (KeyError,))
    assert TransientError in TRANSIENT_EXCEPTIONS
    delays = [backoff_delay(n, base=2, cap=60) for n in range(8)]
    for n, delay in enumerate(delays):
        ceiling = min(60, 2 * 2**n)
        assert ceiling / 2 <= delay <= ceiling
    assert len({round(backoff_delay(3, base=2, cap=60), 6) for _ in range(20)}) > 1  # jitter
