"""Contacts as leads: staff edits, the fields the model extracted, and erasure."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.utils.translation import gettext as _

from apps.accounts.models import User
from apps.conversations.models import Contact, Conversation, Message
from apps.ops.services import dead_letters_forget
from apps.webhooks.events import Event, contact_payload
from apps.webhooks.services import webhook_deliveries_forget_contact, webhook_emit
from eva.db import current_schema
from eva.media import STORAGE_ERRORS, shared_storage, tenant_media_key

logger = logging.getLogger(__name__)

LEAD_FIELDS = ("name", "email", "company", "interest", "budget", "notes")


def _lead_announce(contact: Contact, changed: list[str]) -> None:
    """Tell the business's systems (webhooks); simulator contacts are the business's own tests."""
    if changed and not contact.is_simulated:
        webhook_emit(
            event=Event.LEAD_UPDATED,
            data={"contact": contact_payload(contact), "changed": sorted(changed)},
        )


@transaction.atomic
def contact_update(*, contact: Contact, **fields: Any) -> Contact:
    """Staff edits of a lead: any of the lead fields, ``stage``, ``language``."""
    allowed = {*LEAD_FIELDS, "stage", "language", "phone"}
    unknown = set(fields) - allowed
    if unknown:
        raise ValidationError(f"Unknown contact fields: {', '.join(sorted(unknown))}.")
    changed = []
    for name, value in fields.items():
        value = value if value is not None else ""
        if getattr(contact, name) != value:
            changed.append(name)
        setattr(contact, name, value)
    saved = [*fields, "updated_at"]
    if "name" in changed:
        contact.name_source = Contact.NameSource.STAFF  # never replaced by what the bot hears
        saved.append("name_source")
    contact.full_clean(exclude=["wa_id", "wa_ids"])
    contact.save(update_fields=saved)
    _lead_announce(contact, changed)
    return contact


def lead_field_open(contact: Contact, name: str) -> bool:
    """Whether what the customer says may fill the lead field ``name``: it is empty, or it is
    the name and that came from the WhatsApp profile (not from the customer or staff)."""
    if name == "name" and contact.name_source == Contact.NameSource.PROFILE:
        return True
    return not getattr(contact, name, "")


@transaction.atomic
def contact_lead_fields_fill(*, contact_id: int, values: dict[str, str]) -> list[str]:
    """Fill open lead fields (``lead_field_open``) with values the model extracted (the engine
    only passes values the customer actually wrote). Never overwrites what staff or an earlier
    turn set; a name the customer states replaces the WhatsApp profile's. Returns the names of
    the fields filled."""
    contact = Contact.objects.select_for_update().get(pk=contact_id)
    filled = []
    saved = []
    for name in LEAD_FIELDS:
        value = (values.get(name) or "").strip()
        max_length = getattr(Contact._meta.get_field(name), "max_length", None)
        value = value[:max_length] if max_length else value
        if not value or not lead_field_open(contact, name) or getattr(contact, name) == value:
            continue
        setattr(contact, name, value)
        filled.append(name)
        if name == "name":
            contact.name_source = Contact.NameSource.CUSTOMER
            saved.append("name_source")
    if filled:
        if contact.stage == Contact.Stage.NEW and ({"email", "budget"} & set(filled)):
            # Contact details or a budget mean the lead engaged: qualified, for the sales team.
            contact.stage = Contact.Stage.QUALIFIED
            filled.append("stage")
        contact.save(update_fields=[*filled, *saved, "updated_at"])
        _lead_announce(contact, filled)
    return filled


@transaction.atomic
def contact_language_set(*, contact_id: int, language: str) -> None:
    Contact.objects.filter(pk=contact_id).update(language=language[:10])


@dataclass(frozen=True)
class ContactErased:
    conversations: int
    messages: int
    files: int


@transaction.atomic
def contact_erase(*, contact_id: int, by: User) -> ContactErased:
    """Erase a customer (a data-protection request): their contact, conversations and messages,
    and once that is committed the media files only their messages used (a file staff also sent
    someone else — stored once, content-addressed — stays). Owners and admins only
    (PermissionDenied for anyone else); raises Contact.DoesNotExist.

    Also erased: webhook deliveries carrying their details (what the business's own systems
    received is theirs to erase) and this tenant's stream dead letters naming their WhatsApp
    ids (raw inbound events, with what they wrote). Not erased: usage records (no message
    text), task dead letters (ids only), entries no tenant was found for, and what WhatsApp
    itself keeps on the business's phone.
    """
    if not by.can_manage:
        raise PermissionDenied(_("Only owners and admins erase a customer's data."))
    contact = Contact.objects.select_for_update().get(pk=contact_id)
    messages = Message.objects.filter(conversation__contact=contact)
    refs = {
        str(media["ref"])
        for media in messages.exclude(media__isnull=True).values_list("media", flat=True)
        if isinstance(media, dict) and media.get("ref")
    }
    counted = messages.count()
    webhook_deliveries_forget_contact(contact_id=contact.pk)
    dead_letters_forget(tenant_schema=current_schema(), mentions=[contact.wa_id, *contact.wa_ids])
    messages.delete()
    conversations, _by_model = Conversation.objects.filter(contact=contact).delete()
    contact.delete()
    transaction.on_commit(lambda: _erase_files(refs))
    return ContactErased(conversations=conversations, messages=counted, files=len(refs))


def _erase_files(refs: set[str]) -> None:
    """Delete stored files no remaining message refers to (a failure is logged, not raised: the
    rows are gone already and an orphan file is found by nobody)."""
    if not refs:
        return
    storage = shared_storage()
    # One query for all of them (media keys are content-addressed: another customer may have
    # sent the same file, or staff sent it to someone else too).
    still_used = set(
        Message.objects.filter(media__ref__in=sorted(refs)).values_list("media__ref", flat=True)
    )
    for ref in refs - still_used:
        try:
            key = tenant_media_key(ref)
        except ValueError:
            continue  # never a file outside this tenant's media
        try:
            storage.delete(key)
        except STORAGE_ERRORS:
            logger.warning("erased customer's file not deleted", extra={"ref": ref}, exc_info=True)
