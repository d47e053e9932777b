"""Reads on dead letters (public schema), shared by the dlq command, the admin and health."""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta

from django.db.models import Count, QuerySet
from django.utils import timezone
from django.utils.dateparse import parse_date, parse_datetime
from django_tenants.utils import get_public_schema_name, schema_context

from apps.ops.models import DeadLetter

_RELATIVE = re.compile(r"^(\d+)\s*([smhdw])$")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


@contextmanager
def public_schema() -> Iterator[None]:
    with schema_context(get_public_schema_name()):
        yield


def parse_age(text: str) -> timedelta:
    """``90s``, ``15m``, ``6h``, ``30d``, ``2w`` → a timedelta; ValueError otherwise."""
    match = _RELATIVE.match(text.strip().lower())
    if not match:
        raise ValueError(f"{text!r} is not an age such as 30m, 6h, 7d or 2w")
    return timedelta(**{_UNITS[match.group(2)]: int(match.group(1))})


def parse_since(text: str) -> datetime:
    """An age (``6h``: that long ago) or an ISO date/datetime (UTC when no offset is given)."""
    try:
        return timezone.now() - parse_age(text)
    except ValueError:
        pass
    moment = parse_datetime(text.strip())
    if moment is None:
        day = parse_date(text.strip())
        if day is not None:
            moment = datetime(day.year, day.month, day.day)
    if moment is None:
        raise ValueError(
            f"{text!r} is neither an age (30m, 6h, 7d) nor a date/time (2026-11-25, "
            "2026-11-25T10:00)"
        )
    if timezone.is_naive(moment):
        moment = timezone.make_aware(moment, UTC)
    return moment


def dead_letter_list(
    *,
    tenant: str | None = None,
    task: str | None = None,
    status: str | None = None,
    source: str | None = None,
    since: datetime | None = None,
) -> QuerySet[DeadLetter]:
    """Dead letters, newest failure first. ``tenant="public"`` selects those without a tenant;
    ``task`` matches the name exactly or, ending in ``*``, by prefix."""
    queryset = DeadLetter.objects.all()
    if tenant is not None:
        queryset = queryset.filter(tenant_schema="" if tenant == "public" else tenant)
    if task:
        queryset = (
            queryset.filter(name__startswith=task[:-1])
            if task.endswith("*")
            else queryset.filter(name=task)
        )
    if status:
        queryset = queryset.filter(status=status)
    if source:
        queryset = queryset.filter(source=source)
    if since is not None:
        queryset = queryset.filter(last_failed_at__gte=since)
    return queryset.order_by("-last_failed_at", "-id")


def dead_letter_get(*, dead_letter_id: int) -> DeadLetter | None:
    return DeadLetter.objects.filter(pk=dead_letter_id).first()


def dead_letter_counts() -> dict[str, object]:
    """Totals by status, new ones by task and tenant, and dead letters of the last hour."""
    hour_ago = timezone.now() - timedelta(hours=1)
    by_status = {
        row["status"]: row["n"]
        for row in DeadLetter.objects.values("status").annotate(n=Count("id")).order_by()
    }
    new = DeadLetter.objects.filter(status=DeadLetter.Status.NEW)
    return {
        "by_status": {status: by_status.get(status, 0) for status in DeadLetter.Status.values},
        "new_by_task": {
            row["name"]: row["n"]
            for row in new.values("name").annotate(n=Count("id")).order_by("-n", "name")
        },
        "new_by_tenant": {
            (row["tenant_schema"] or "public"): row["n"]
            for row in new.values("tenant_schema").annotate(n=Count("id")).order_by("-n")
        },
        "last_hour": DeadLetter.objects.filter(last_failed_at__gte=hour_ago).count(),
    }
