"""Dead letters in the platform admin (public schema, platform staff only)."""

from __future__ import annotations

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest

from apps.ops.models import DeadLetter
from apps.ops.services import (
    DeadLetterError,
    dead_letter_discard,
    dead_letter_replay,
    dead_letter_resolve,
)


@admin.register(DeadLetter)
class DeadLetterAdmin(admin.ModelAdmin):
    list_display = (
        "id",
        "status",
        "name",
        "tenant_schema",
        "exception_type",
        "attempts",
        "replays",
        "last_failed_at",
    )
    list_filter = ("status", "source", "tenant_schema", "name")
    search_fields = ("name", "error", "task_id", "tenant_schema")
    date_hierarchy = "last_failed_at"
    actions = ["replay", "discard", "resolve"]
    # Dead letters are evidence: edited only through the actions, never by hand.
    readonly_fields = [field.name for field in DeadLetter._meta.fields]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False

    @admin.action(description="Replay selected dead letters (in their tenant schema)")
    def replay(self, request: HttpRequest, queryset: QuerySet[DeadLetter]) -> None:
        for dead_letter in queryset:
            try:
                outcome = dead_letter_replay(dead_letter_id=dead_letter.pk)
            except DeadLetterError as exc:
                self.message_user(request, str(exc), messages.ERROR)
                continue
            level = messages.SUCCESS if outcome.sent else messages.WARNING
            self.message_user(request, f"#{dead_letter.pk}: {outcome.detail}", level)

    @admin.action(description="Discard selected dead letters")
    def discard(self, request: HttpRequest, queryset: QuerySet[DeadLetter]) -> None:
        for dead_letter in queryset:
            dead_letter_discard(dead_letter_id=dead_letter.pk, note=f"discarded by {request.user}")
        self.message_user(request, f"{queryset.count()} dead letter(s) discarded")

    @admin.action(description="Mark selected dead letters resolved")
    def resolve(self, request: HttpRequest, queryset: QuerySet[DeadLetter]) -> None:
        for dead_letter in queryset:
            dead_letter_resolve(dead_letter_id=dead_letter.pk, note=f"resolved by {request.user}")
        self.message_user(request, f"{queryset.count()} dead letter(s) resolved")
