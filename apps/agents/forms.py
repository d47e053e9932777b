from __future__ import annotations

import zoneinfo
from functools import cache
from typing import Any

from django import forms
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from apps.agents.models import Agent
from apps.agents.services import AGENT_FIELDS

LANGUAGES = [("es", "Español"), ("en", "English"), ("pt", "Português")]
WEEKDAYS = [
    (1, _("Mon")),
    (2, _("Tue")),
    (3, _("Wed")),
    (4, _("Thu")),
    (5, _("Fri")),
    (6, _("Sat")),
    (7, _("Sun")),
]


# The editor's sections, in order; every field of the form is in exactly one.
FIELDSETS = (
    (_("Who the agent is"), ("name", "persona", "tone", "instructions", "greeting")),
    (_("Selling"), ("sales_goals",)),
    (_("Language"), ("language_policy", "default_language")),
    (
        _("Knowledge and model"),
        ("knowledge_scope", "document_ids", "model_route", "max_reply_chars"),
    ),
    (
        _("Handing over to a person"),
        ("handoff_on_request", "handoff_keywords", "handoff_low_relevance_turns", "min_relevance"),
    ),
    (
        _("Business hours"),
        ("handoff_outside_hours", "hours_start", "hours_end", "business_days", "timezone"),
    ),
    (_("Status"), ("is_active", "is_default")),
)


@cache
def time_zones() -> list[str]:
    """The IANA time zones this server knows, for the editor's suggestions."""
    return sorted(zoneinfo.available_timezones() - {"localtime", "Factory"})


def _document_choices() -> list[tuple[int, str]]:
    # The knowledge app lists the tenant's documents; agents may import knowledge.
    from apps.knowledge.selectors import document_list

    return [(d.pk, d.title) for d in document_list()]


class AgentForm(forms.ModelForm):
    """The dashboard's agent editor; validation of the whole agent happens in the service."""

    sales_goals = forms.MultipleChoiceField(
        label=_("Sales goals"),
        choices=Agent.Goal.choices,
        widget=forms.CheckboxSelectMultiple(attrs={"class": "choices"}),
        required=False,
    )
    document_ids = forms.TypedMultipleChoiceField(
        label=_("Documents"),
        coerce=int,
        widget=forms.CheckboxSelectMultiple(attrs={"class": "choices"}),
        required=False,
        help_text=_("Used when the knowledge scope is “Chosen documents”."),
    )
    handoff_keywords = forms.CharField(
        label=_("Handoff keywords"),
        required=False,
        help_text=_("Comma-separated, e.g. “complaint, refund, lawyer”."),
    )
    default_language = forms.ChoiceField(label=_("Default language"), choices=LANGUAGES)
    business_days = forms.TypedMultipleChoiceField(
        label=_("Business days"),
        choices=WEEKDAYS,
        coerce=int,
        widget=forms.CheckboxSelectMultiple(attrs={"class": "choices"}),
        required=False,
    )

    class Meta:
        model = Agent
        fields = list(AGENT_FIELDS)
        widgets = {
            "persona": forms.Textarea(attrs={"rows": 2}),
            "instructions": forms.Textarea(attrs={"rows": 5}),
            "hours_start": forms.TimeInput(attrs={"type": "time"}),
            "hours_end": forms.TimeInput(attrs={"type": "time"}),
            # Any IANA zone is accepted (the service checks it); the list only suggests.
            "timezone": forms.TextInput(attrs={"list": "time-zones", "autocomplete": "off"}),
        }

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        documents = self.fields["document_ids"]
        assert isinstance(documents, forms.TypedMultipleChoiceField)
        documents.choices = _document_choices()
        if self.instance.pk and not self.is_bound:
            self.initial["handoff_keywords"] = ", ".join(self.instance.handoff_keywords)
        elif not self.is_bound:
            # A new agent keeps the hours of the place the person creating it is in (the
            # browser's zone, eva.middleware.BrowserTimeZoneMiddleware), not UTC.
            self.initial.setdefault("timezone", timezone.get_current_timezone_name())

    def zone_suggestions(self) -> list[str]:
        return time_zones()

    def fieldsets(self) -> list[tuple[str, list[forms.BoundField]]]:
        """The fields by section, for the template."""
        return [(str(legend), [self[name] for name in names]) for legend, names in FIELDSETS]

    def clean_handoff_keywords(self) -> list[str]:
        raw = self.cleaned_data.get("handoff_keywords") or ""
        return [k.strip() for k in raw.split(",") if k.strip()]

    def _post_clean(self) -> None:
        # The service validates the whole agent (full_clean and cross-field rules) on save.
        pass

    def agent_fields(self) -> dict[str, Any]:
        return {name: self.cleaned_data[name] for name in AGENT_FIELDS if name in self.cleaned_data}
