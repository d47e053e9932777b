"""Typed access to django-tenants' additions on the database connection."""

from __future__ import annotations

from django.db import connection


def current_schema() -> str:
    """The schema the default connection is routed to (``public`` outside any tenant)."""
    return str(getattr(connection, "schema_name", "public"))


def use_public_schema() -> None:
    connection.set_schema_to_public()  # type: ignore[attr-defined]


def use_tenant_schema(tenant: object) -> None:
    """Route the connection to ``tenant``'s schema (until something routes it elsewhere)."""
    connection.set_tenant(tenant)  # type: ignore[attr-defined]
