"""Dead letters: work that failed for good, kept in the public schema until an operator acts.

A dead letter is either a Celery task whose retries ran out (or that failed permanently, timed
out, or kept killing its worker) or an entry of a Redis stream that kept failing. It holds
everything needed to run the work again: the task name, its arguments and the tenant schema it
was sent from. The table lives in the public schema only (``apps.ops`` is a shared app), so
operators see every tenant's dead letters in one place and tenants never see any.
"""

from __future__ import annotations

from django.db import models
from django.db.models import Q


class DeadLetter(models.Model):
    class Source(models.TextChoices):
        TASK = "task", "Celery task"
        STREAM = "stream", "Stream entry"
        OTHER = "other", "Other"

    class Status(models.TextChoices):
        NEW = "new", "New"  # waiting for an operator
        REPLAYED = "replayed", "Replayed"  # a replay ran successfully
        RESOLVED = "resolved", "Resolved"  # handled by other means (e.g. by hand)
        DISCARDED = "discarded", "Discarded"  # deliberately dropped

    source = models.CharField(max_length=16, choices=Source.choices, default=Source.TASK)
    # Task name (workers.<module>.<task>) or the stream/handler name for other sources.
    name = models.CharField(max_length=255, db_index=True)
    # Celery task id of the failed run; empty for stream entries. Unique when set, so a task
    # redelivered and failing again updates its one dead letter instead of adding another.
    task_id = models.CharField(max_length=255, blank=True, default="")
    # Empty: sent from the public schema (platform work, or a tenant task sent without a tenant).
    tenant_schema = models.CharField(max_length=63, blank=True, default="", db_index=True)
    # Tasks: {"args": [...], "kwargs": {...}, "queue": "..."}; streams: the entry's fields.
    payload = models.JSONField(default=dict, blank=True)
    exception_type = models.CharField(max_length=255, blank=True, default="")
    error = models.TextField(blank=True, default="")
    traceback = models.TextField(blank=True, default="")
    attempts = models.PositiveIntegerField(default=1)
    worker_host = models.CharField(max_length=255, blank=True, default="")
    status = models.CharField(
        max_length=16, choices=Status.choices, default=Status.NEW, db_index=True
    )
    first_failed_at = models.DateTimeField()
    last_failed_at = models.DateTimeField(db_index=True)
    # Replays: how many were sent, the id of the one in flight (empty when none), when the last
    # was sent and when the record last changed status, and by whom (an operator's note).
    replays = models.PositiveIntegerField(default=0)
    replay_task_id = models.CharField(max_length=255, blank=True, default="")
    last_replayed_at = models.DateTimeField(null=True, blank=True)
    status_changed_at = models.DateTimeField(null=True, blank=True)
    note = models.TextField(blank=True, default="")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-last_failed_at", "-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["task_id"], condition=~Q(task_id=""), name="ops_deadletter_task_id_unique"
            ),
            models.CheckConstraint(
                condition=Q(status__in=["new", "replayed", "resolved", "discarded"]),
                name="ops_deadletter_status_valid",
            ),
        ]
        indexes = [models.Index(fields=["status", "last_failed_at"])]

    def __str__(self) -> str:
        tenant = self.tenant_schema or "public"
        return f"#{self.pk} {self.name} [{tenant}] {self.status}"

    @property
    def args(self) -> list[object]:
        value = self.payload.get("args", [])
        return list(value) if isinstance(value, list | tuple) else []

    @property
    def kwargs(self) -> dict[str, object]:
        value = self.payload.get("kwargs", {})
        return dict(value) if isinstance(value, dict) else {}
