"""A tenant's sales agent: who it is, what it aims for, what it may use, when it steps aside."""

from __future__ import annotations

from django.contrib.postgres.fields import ArrayField
from django.db import models
from django.utils.translation import gettext_lazy as _


class Agent(models.Model):
    class Tone(models.TextChoices):
        FRIENDLY = "friendly", _("Friendly")
        PROFESSIONAL = "professional", _("Professional")
        FORMAL = "formal", _("Formal")
        CASUAL = "casual", _("Casual")

    class Goal(models.TextChoices):
        QUALIFY = "qualify", _("Qualify the lead (need, budget, timing)")
        SHARE_PRICES = "share_prices", _("Share prices from the price list")
        BOOK_VISIT = "book_visit", _("Book a visit or a call")
        COLLECT_EMAIL = "collect_email", _("Collect the customer's email")
        COLLECT_NAME = "collect_name", _("Collect the customer's name")
        CLOSE_SALE = "close_sale", _("Move towards an order")

    class LanguagePolicy(models.TextChoices):
        CUSTOMER = "customer", _("Answer in the customer's language")
        FIXED = "fixed", _("Always answer in the default language")

    class KnowledgeScope(models.TextChoices):
        ALL = "all", _("All documents")
        SELECTED = "selected", _("Chosen documents")

    name = models.CharField(_("name"), max_length=80)
    persona = models.TextField(
        _("persona"),
        blank=True,
        help_text=_("Who the agent is, e.g. “Sofía, the store's friendly sales assistant”."),
    )
    tone = models.CharField(_("tone"), max_length=16, choices=Tone.choices, default=Tone.FRIENDLY)
    instructions = models.TextField(
        _("instructions"), blank=True, help_text=_("What the agent should and should not do.")
    )
    sales_goals = ArrayField(
        models.CharField(max_length=20, choices=Goal.choices), default=list, blank=True
    )
    greeting = models.CharField(_("greeting"), max_length=300, blank=True)
    language_policy = models.CharField(
        _("language policy"),
        max_length=10,
        choices=LanguagePolicy.choices,
        default=LanguagePolicy.CUSTOMER,
    )
    default_language = models.CharField(_("default language"), max_length=10, default="es")
    knowledge_scope = models.CharField(
        _("knowledge"), max_length=10, choices=KnowledgeScope.choices, default=KnowledgeScope.ALL
    )
    # Ids of apps.knowledge documents when the scope is "selected" (ids, so deleting a document
    # never deletes or blocks an agent; unknown ids simply match nothing).
    document_ids = ArrayField(models.BigIntegerField(), default=list, blank=True)
    model_route = models.CharField(
        _("model route"),
        max_length=200,
        blank=True,
        help_text=_("Empty: the platform default. E.g. “openai:gpt-4o-mini,local”."),
    )
    # Handoff rules.
    handoff_on_request = models.BooleanField(
        _("hand off when the customer asks for a person"), default=True
    )
    handoff_keywords = ArrayField(
        models.CharField(max_length=60), default=list, blank=True, verbose_name=_("keywords")
    )
    handoff_low_relevance_turns = models.PositiveSmallIntegerField(
        _("hand off after this many turns without relevant knowledge (0: never)"), default=3
    )
    min_relevance = models.FloatField(
        _("relevance floor"),
        default=0.0,
        help_text=_(
            "Retrieval scores (0 to 1) below this count as “no relevant knowledge”; "
            "0: only finding nothing counts."
        ),
    )
    handoff_outside_hours = models.BooleanField(
        _("hand off messages that arrive outside business hours"), default=False
    )
    hours_start = models.TimeField(_("business hours from"), null=True, blank=True)
    hours_end = models.TimeField(_("business hours until"), null=True, blank=True)
    # ISO weekdays 1 (Monday) .. 7 (Sunday).
    business_days = ArrayField(models.PositiveSmallIntegerField(), default=list, blank=True)
    timezone = models.CharField(_("time zone"), max_length=50, default="UTC")
    max_reply_chars = models.PositiveIntegerField(_("maximum reply length"), default=700)
    is_active = models.BooleanField(_("active"), default=True)
    # The agent that answers WhatsApp conversations not bound to a particular agent.
    is_default = models.BooleanField(_("default agent"), default=False)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name", "id"]
        constraints = [
            models.UniqueConstraint(
                fields=["is_default"],
                condition=models.Q(is_default=True),
                name="one_default_agent",
            )
        ]

    def __str__(self) -> str:
        return self.name
