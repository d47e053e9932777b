"""The public sign-up form: a business creates its workspace and its owner account."""

from __future__ import annotations

from typing import Any

from django import forms
from django.conf import settings
from django.contrib.auth.password_validation import validate_password
from django.core.exceptions import ValidationError
from django.utils.translation import gettext_lazy as _

from apps.accounts.models import User
from apps.tenants.models import Domain, Tenant
from apps.tenants.validators import RESERVED_SLUGS, SLUG_RE


class SignupForm(forms.Form):
    name = forms.CharField(label=_("Business name"), max_length=100)
    slug = forms.CharField(
        label=_("Workspace address"),
        max_length=40,
        help_text=_("3 to 40 lowercase letters, digits or hyphens, starting with a letter."),
        widget=forms.TextInput(attrs={"autocapitalize": "none", "spellcheck": "false"}),
    )
    email = forms.EmailField(
        label=_("Your email"), widget=forms.EmailInput(attrs={"autocomplete": "email"})
    )
    password = forms.CharField(
        label=_("Password"),
        strip=False,
        widget=forms.PasswordInput(attrs={"autocomplete": "new-password"}),
    )

    def clean_name(self) -> str:
        name = self.cleaned_data["name"].strip()
        if not name:
            raise ValidationError(_("Give your business a name."))
        return name

    def clean_slug(self) -> str:
        slug = self.cleaned_data["slug"].strip().lower()
        if not SLUG_RE.match(slug):
            raise ValidationError(
                _("Use 3 to 40 lowercase letters, digits or hyphens, starting with a letter.")
            )
        domain = f"{slug}.{settings.EVA_BASE_DOMAIN}"
        # Taken, reserved: one message, never who holds it.
        if (
            slug in RESERVED_SLUGS
            or slug.startswith("pg-")
            or Tenant.objects.filter(slug=slug).exists()
            or Domain.objects.filter(domain=domain).exists()
        ):
            raise ValidationError(_("This address is taken; choose another one."))
        return slug

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or {}
        password = cleaned.get("password")
        if password:
            try:
                # Checked against the email and name too (not too similar to either).
                validate_password(
                    password,
                    User(email=cleaned.get("email", ""), full_name=cleaned.get("name", "")),
                )
            except ValidationError as exc:
                self.add_error("password", exc)
        return cleaned
