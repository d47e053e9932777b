"""Fixtures shared by the dead-letter tests (apps/ops/tests, workers/tests/test_dlq*, ...).

Import them into a test module (``from apps.ops.tests.fixtures import committed_db``).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest


@pytest.fixture
def committed_db(django_db_setup, django_db_blocker) -> Iterator[None]:
    """Database access without a wrapping transaction: every write commits.

    Dead letters are written by worker processes and updated under row locks, and services
    publish on commit; inside a test transaction the test would hold locks the worker waits
    for. A transactional test case (flush at the end) would delete the shared tenants, so
    tests using this fixture key their records by unique ids instead.

    pytest-django creates the test database only when some collected test is marked
    ``django_db``; every module using this fixture therefore has at least one such test, and
    this guard stops a run that would otherwise write to a real database.
    """
    from django.db import connection

    name = str(connection.settings_dict["NAME"])
    if not name.startswith("test_"):
        raise RuntimeError(
            f"refusing to use database {name!r}: no test database was set up (add a "
            "@pytest.mark.django_db test to the module)"
        )
    with django_db_blocker.unblock():
        yield


def wait_until(check: Callable[[], Any], *, timeout: float = 30, what: str = "condition") -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")
