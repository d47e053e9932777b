from __future__ import annotations

from decimal import Decimal

from django import forms
from django.utils.translation import gettext_lazy as _

from .models import ProviderKey


class ProviderKeyForm(forms.Form):
    provider = forms.ChoiceField(label=_("Provider"), choices=ProviderKey.Provider.choices)
    # render_value=False: a key is never written back into the page, even after an error.
    api_key = forms.CharField(
        label=_("API key"), max_length=500, widget=forms.PasswordInput(render_value=False)
    )
    base_url = forms.URLField(
        label=_("Base URL (OpenAI-compatible only)"), required=False, assume_scheme="https"
    )


class BudgetForm(forms.Form):
    monthly_limit_usd = forms.DecimalField(
        label=_("Monthly budget (USD)"),
        required=False,
        min_value=Decimal("0"),
        max_digits=10,
        decimal_places=2,
        help_text=_("Empty: no limit. Over the limit, replies use the cheaper route."),
    )
