import logging
from typing import Any

from django import forms
from django.contrib.auth.forms import AuthenticationForm
from django.core.cache import cache
from django.core.exceptions import ValidationError
from django.utils.translation import gettext_lazy as _

from eva.clients import client_address

logger = logging.getLogger(__name__)

LOGIN_FAILURES_ALLOWED = 10
LOGIN_LOCKOUT_S = 15 * 60


class LoginForm(AuthenticationForm):
    """Email and password; after LOGIN_FAILURES_ALLOWED wrong passwords for one email from one
    address within LOGIN_LOCKOUT_S, that pair is refused until the window ends (the tenant's
    schema is part of the cache key: one workspace's failures never lock another's)."""

    username = forms.EmailField(
        label=_("Email"),
        widget=forms.EmailInput(attrs={"autofocus": True, "autocomplete": "email"}),
    )

    def clean(self) -> dict[str, Any]:
        key = self._failures_key()
        if self._failures(key) >= LOGIN_FAILURES_ALLOWED:
            raise ValidationError(
                _("Too many failed attempts. Try again in %(minutes)s minutes.")
                % {"minutes": LOGIN_LOCKOUT_S // 60},
                code="throttled",
            )
        try:
            return super().clean()
        except ValidationError:
            self._count_failure(key)
            raise

    @staticmethod
    def _failures(key: str) -> int:
        # Redis down must not lock everyone out of the dashboard: the count is then skipped.
        try:
            return int(cache.get(key, 0))
        except Exception:
            logger.warning("login failures not read (cache unreachable)", exc_info=True)
            return 0

    @staticmethod
    def _count_failure(key: str) -> None:
        try:
            cache.add(key, 0, timeout=LOGIN_LOCKOUT_S)
            cache.incr(key)
        except Exception:
            logger.warning("login failure not counted (cache unreachable)", exc_info=True)

    def _failures_key(self) -> str:
        email = str(self.cleaned_data.get("username") or self.data.get("username") or "")
        address = client_address(self.request) if self.request is not None else ""
        return f"login-failures:{address}:{email.strip().lower()[:254]}"


class ApiTokenForm(forms.Form):
    name = forms.CharField(
        label=_("Token name"),
        max_length=80,
        help_text=_("What will use it, e.g. “CRM sync”."),
    )


class MemberForm(forms.Form):
    email = forms.EmailField(label=_("Email"))
    full_name = forms.CharField(label=_("Full name"), max_length=150, required=False)
    role = forms.ChoiceField(label=_("Role"), initial="staff")  # the safe default

    def __init__(self, *args: Any, roles: list[tuple[str, str]], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        role = self.fields["role"]
        assert isinstance(role, forms.ChoiceField)
        role.choices = roles
