"""Contacts as leads: staff edits and the fields the model extracted."""

from __future__ import annotations

from typing import Any

from django.core.exceptions import ValidationError
from django.db import transaction

from apps.conversations.models import Contact

LEAD_FIELDS = ("name", "email", "company", "interest", "budget", "notes")


@transaction.atomic
def contact_update(*, contact: Contact, **fields: Any) -> Contact:
    """Staff edits of a lead: any of the lead fields, ``stage``, ``language``."""
    allowed = {*LEAD_FIELDS, "stage", "language", "phone"}
    unknown = set(fields) - allowed
    if unknown:
        raise ValidationError(f"Unknown contact fields: {', '.join(sorted(unknown))}.")
    for name, value in fields.items():
        setattr(contact, name, value if value is not None else "")
    contact.full_clean(exclude=["wa_id", "wa_ids"])
    contact.save(update_fields=[*fields, "updated_at"])
    return contact


@transaction.atomic
def contact_lead_fields_fill(*, contact_id: int, values: dict[str, str]) -> list[str]:
    """Fill empty lead fields with values the model extracted (the engine only passes values the
    customer actually wrote). Never overwrites what staff or an earlier turn set. Returns the
    names of the fields filled."""
    contact = Contact.objects.select_for_update().get(pk=contact_id)
    filled = []
    for name in LEAD_FIELDS:
        value = (values.get(name) or "").strip()
        if not value or getattr(contact, name):
            continue
        max_length = getattr(Contact._meta.get_field(name), "max_length", None)
        setattr(contact, name, value[:max_length] if max_length else value)
        filled.append(name)
    if filled:
        if contact.stage == Contact.Stage.NEW and ({"email", "budget"} & set(filled)):
            # Contact details or a budget mean the lead engaged: qualified, for the sales team.
            contact.stage = Contact.Stage.QUALIFIED
            filled.append("stage")
        contact.save(update_fields=[*filled, "updated_at"])
    return filled


@transaction.atomic
def contact_language_set(*, contact_id: int, language: str) -> None:
    Contact.objects.filter(pk=contact_id).update(language=language[:10])
