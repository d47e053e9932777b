from __future__ import annotations

from typing import TYPE_CHECKING

from django import forms
from django.utils.translation import gettext_lazy as _

from apps.conversations.models import Contact, Conversation

if TYPE_CHECKING:  # django-stubs (a development dependency) names lazy strings
    from django_stubs_ext import StrOrPromise


class LeadForm(forms.ModelForm):
    """Staff edit a lead's fields; saved through ``contact_update``."""

    class Meta:
        model = Contact
        fields = ["name", "email", "phone", "company", "interest", "budget", "stage", "notes"]
        widgets = {"notes": forms.Textarea(attrs={"rows": 3})}

    def _post_clean(self) -> None:
        # contact_update validates and saves; the form only cleans its fields.
        pass


class StaffReplyForm(forms.Form):
    text = forms.CharField(
        label=_("Reply"),
        max_length=4096,
        required=False,
        widget=forms.Textarea(
            attrs={"rows": 2, "placeholder": _("Write to the customer…"), "aria-label": _("Reply")}
        ),
    )
    attachment = forms.FileField(
        label=_("Attach a file"),
        required=False,
        help_text=_("A picture, audio, a PDF, a Word or Excel file; the text is its caption."),
    )

    def clean(self) -> dict[str, object]:
        cleaned = super().clean() or {}
        if not cleaned.get("text", "").strip() and not cleaned.get("attachment"):
            raise forms.ValidationError(_("Write a message first."))
        return cleaned


def _search_field(placeholder: StrOrPromise) -> forms.CharField:
    return forms.CharField(
        label=_("Search"),
        required=False,
        max_length=100,
        widget=forms.TextInput(
            attrs={"type": "search", "placeholder": placeholder, "aria-label": _("Search")}
        ),
    )


class InboxFilterForm(forms.Form):
    mode = forms.ChoiceField(
        label=_("Mode"), required=False, choices=[("", _("Any mode")), *Conversation.Mode.choices]
    )
    stage = forms.ChoiceField(
        label=_("Stage"), required=False, choices=[("", _("Any stage")), *Contact.Stage.choices]
    )
    agent = forms.TypedChoiceField(label=_("Agent"), required=False, coerce=int, empty_value=None)
    channel = forms.ChoiceField(
        label=_("Channel"),
        required=False,
        choices=[("", _("Customers")), *Conversation.Channel.choices],
    )
    assigned = forms.ChoiceField(
        label=_("Assigned to"),
        required=False,
        choices=[("", _("Anyone")), ("me", _("Assigned to me")), ("nobody", _("Unassigned"))],
    )
    unread = forms.BooleanField(label=_("Unread only"), required=False)
    q = _search_field(_("Name, phone, email or message"))


class LeadFilterForm(forms.Form):
    stage = forms.ChoiceField(
        label=_("Stage"), required=False, choices=[("", _("Any stage")), *Contact.Stage.choices]
    )
    q = _search_field(_("Name, phone or email"))
