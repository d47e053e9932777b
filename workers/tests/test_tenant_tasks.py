"""Tasks run on a real worker process in the schema they were sent from."""

from __future__ import annotations

import pytest
from celery.exceptions import CeleryError
from django_tenants.utils import tenant_context

from workers.diagnostics import ping, tenant_probe

pytestmark = pytest.mark.django_db


def test_a_task_sent_from_tenant_a_runs_in_schema_a(world, celery_worker):
    with tenant_context(world.tenant_a):
        result_a = tenant_probe.delay()
    with tenant_context(world.tenant_b):
        result_b = tenant_probe.delay()
    a = result_a.get(timeout=30)
    b = result_b.get(timeout=30)
    assert a == {"schema": "alpha", "users": ["owner@alpha.test", "staff@alpha.test"]}
    assert b == {"schema": "beta", "users": ["owner@beta.test"]}


def test_a_tenant_task_without_a_tenant_refuses_to_run(world, celery_worker):
    result = tenant_probe.delay()  # sent from the public schema
    with pytest.raises(Exception, match="needs a tenant schema") as raised:
        result.get(timeout=30)
    assert not isinstance(raised.value, CeleryError)  # the task's own refusal, not a timeout
    assert result.state == "FAILURE"


def test_a_platform_task_runs_without_a_tenant(celery_worker):
    assert ping.delay().get(timeout=30) == "pong"
