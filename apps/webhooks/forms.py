from __future__ import annotations

from django import forms
from django.utils.translation import gettext_lazy as _

from apps.webhooks.events import Event


class WebhookEndpointForm(forms.Form):
    """The address and events; the service checks where the address leads."""

    url = forms.CharField(
        label=_("Address (URL)"),
        max_length=500,
        widget=forms.URLInput(attrs={"placeholder": "https://crm.example.com/eva", "size": 40}),
    )
    description = forms.CharField(label=_("Description"), max_length=100, required=False)
    events = forms.MultipleChoiceField(
        label=_("Events"),
        choices=Event.choices,
        widget=forms.CheckboxSelectMultiple,
        error_messages={"required": _("Choose at least one event.")},
    )
    is_active = forms.BooleanField(label=_("Active"), required=False, initial=True)
