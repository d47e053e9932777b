"""Diagnostic tasks used by operators and tests to prove a worker runs in the right schema."""

from __future__ import annotations

from apps.accounts.selectors import user_list
from eva.celery import app
from eva.db import current_schema
from workers.base import TenantBoundTask


@app.task(name="workers.diagnostics.ping")
def ping() -> str:
    return "pong"


@app.task(name="workers.diagnostics.tenant_probe", base=TenantBoundTask)
def tenant_probe() -> dict[str, object]:
    """Report the schema the task ran in and the users it sees there."""
    return {
        "schema": current_schema(),
        "users": list(user_list().values_list("email", flat=True)),
    }
