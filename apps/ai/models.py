"""Tenant-schema records of the model layer: usage metering, bring-your-own keys, budgets.

All three live only in tenant schemas (apps.ai is a TENANT app), so one tenant's usage or keys
can never be read from another tenant's host. Agents are referred to by an opaque integer id:
apps.ai is a leaf and knows nothing of the agents app.
"""

from __future__ import annotations

from decimal import Decimal

from django.db import models


class Purpose(models.TextChoices):
    REPLY = "reply", "Reply"
    EMBEDDING = "embedding", "Embedding"
    EXTRACTION = "extraction", "Extraction"
    CHECK = "check", "Check"


class UsageRecord(models.Model):
    """One call to a model (chat or embedding), successful or not.

    A routed chat turn that tried several providers writes one record for the attempt that
    answered (or the last one that failed), with ``fell_back`` and ``attempts`` telling the story.
    """

    class Kind(models.TextChoices):
        CHAT = "chat", "Chat"
        EMBEDDING = "embedding", "Embedding"

    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    agent_id = models.BigIntegerField(null=True, blank=True)
    purpose = models.CharField(max_length=32, default=Purpose.REPLY)
    kind = models.CharField(max_length=16, choices=Kind.choices)
    provider = models.CharField(max_length=32)
    model = models.CharField(max_length=128)
    tokens_in = models.PositiveIntegerField(default=0)
    tokens_out = models.PositiveIntegerField(default=0)
    items = models.PositiveIntegerField(default=0, help_text="texts embedded")
    latency_ms = models.PositiveIntegerField(default=0)
    success = models.BooleanField(default=True)
    error = models.CharField(max_length=300, blank=True, default="")
    attempts = models.PositiveSmallIntegerField(default=1)
    fell_back = models.BooleanField(default=False)
    # Why the route was changed for budget reasons ("" when it was not).
    budget_note = models.CharField(max_length=200, blank=True, default="")
    key_source = models.CharField(max_length=16, default="none")  # env | tenant | none
    cost_usd = models.DecimalField(max_digits=14, decimal_places=8, default=Decimal("0"))

    class Meta:
        ordering = ("-created_at", "-id")
        indexes = [models.Index(fields=("created_at", "model"), name="ai_usage_day_model")]

    def __str__(self) -> str:
        return f"{self.kind} {self.provider}/{self.model} {self.created_at:%Y-%m-%d}"


class ProviderKey(models.Model):
    """A tenant's own API key for a provider (bring-your-own-key), encrypted at rest.

    The plaintext is never returned by any selector meant for display, never logged, and never
    rendered again after entry: the dashboard shows only that a key is set and when.
    """

    class Provider(models.TextChoices):
        GEMINI = "gemini", "Google Gemini"
        OPENAI = "openai", "OpenAI / OpenAI-compatible"

    provider = models.CharField(max_length=16, choices=Provider.choices, unique=True)
    encrypted_key = models.TextField()
    # Only for OpenAI-compatible endpoints (Ollama, vLLM...): a tenant's own base URL.
    base_url = models.URLField(blank=True, default="")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    def __str__(self) -> str:
        return f"{self.provider} key"


class TenantBudget(models.Model):
    """Optional monthly spend limit of the tenant (one row at most)."""

    monthly_limit_usd = models.DecimalField(max_digits=10, decimal_places=2, null=True, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    def __str__(self) -> str:
        return f"budget {self.monthly_limit_usd}"
