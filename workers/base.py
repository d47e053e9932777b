from __future__ import annotations

from typing import Any

from django_tenants.utils import get_public_schema_name
from tenant_schemas_celery.task import TenantTask

from eva.db import current_schema


class TenantRequiredError(RuntimeError):
    """A tenant task was sent without a tenant schema (from the public schema)."""


class TenantBoundTask(TenantTask):
    """Base for tasks that work on tenant data: refuses to run in the public schema.

    tenant-schemas-celery switches the connection to the schema the task was sent from before
    the task body runs; a task sent from the public schema would otherwise query public tables
    (or fail obscurely), so it is rejected outright.
    """

    abstract = True

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        if current_schema() == get_public_schema_name():
            raise TenantRequiredError(
                f"task {self.name} needs a tenant schema but was sent from the public schema"
            )
        return super().__call__(*args, **kwargs)
