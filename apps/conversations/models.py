"""Contacts (leads), their conversations per channel, and the messages of each conversation.

Every row lives in the tenant's schema. ``Conversation.agent_id`` is a plain id, not a foreign
key: agents import conversations (ARCHITECTURE.md), so conversations must not depend on agents.
"""

from __future__ import annotations

import re

from django.conf import settings
from django.contrib.postgres.fields import ArrayField
from django.contrib.postgres.indexes import GinIndex
from django.db import models
from django.db.models import Q
from django.utils.translation import gettext_lazy as _


class Contact(models.Model):
    """A customer who wrote to the business: the lead the sales agent works on."""

    class Stage(models.TextChoices):
        NEW = "new", _("New")
        QUALIFIED = "qualified", _("Qualified")
        WON = "won", _("Won")
        LOST = "lost", _("Lost")

    # The WhatsApp id the contact first wrote from (e.g. "34600111222@c.us"); simulator contacts
    # get "sim:<uuid>". Other ids of the same person (WhatsApp LIDs) go to ``wa_ids``.
    wa_id = models.CharField(_("WhatsApp id"), max_length=100, unique=True)
    wa_ids = ArrayField(models.CharField(max_length=100), default=list, blank=True)
    phone = models.CharField(_("phone"), max_length=20, blank=True, help_text=_("E.164"))

    class NameSource(models.TextChoices):
        PROFILE = "profile", _("WhatsApp profile")
        CUSTOMER = "customer", _("the customer")
        STAFF = "staff", _("staff")

    name = models.CharField(_("name"), max_length=150, blank=True)
    # Where ``name`` came from. A WhatsApp profile name ("Ana 🌸", a shop's label, the
    # simulator's) gives way to the name the customer states; neither overwrites what staff typed.
    # db_default: eva_inbound_messages inserts contacts without naming this column.
    name_source = models.CharField(
        _("name from"),
        max_length=10,
        choices=NameSource.choices,
        default=NameSource.PROFILE,
        db_default=NameSource.PROFILE,
    )
    language = models.CharField(_("language"), max_length=10, blank=True)
    email = models.EmailField(_("email"), blank=True)
    company = models.CharField(_("company"), max_length=150, blank=True)
    interest = models.CharField(_("interest"), max_length=300, blank=True)
    budget = models.CharField(_("budget"), max_length=100, blank=True)
    notes = models.TextField(_("notes"), blank=True)
    stage = models.CharField(_("stage"), max_length=12, choices=Stage.choices, default=Stage.NEW)
    is_simulated = models.BooleanField(_("simulator contact"), default=False)
    opted_out = models.BooleanField(_("opted out"), default=False)
    opted_out_at = models.DateTimeField(_("opted out at"), null=True, blank=True)
    first_contact_at = models.DateTimeField(_("first contact"), null=True, blank=True)
    last_contact_at = models.DateTimeField(_("last contact"), null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-last_contact_at", "-id"]
        # fastupdate off: every inbound batch looks ids up here, and a GIN pending list (filled by
        # new contacts until vacuum) would be scanned whole by each lookup (milliseconds at
        # 100k contacts). Contacts are written far less often than they are looked up.
        indexes = [GinIndex(fields=["wa_ids"], name="contact_wa_ids_gin", fastupdate=False)]

    def __str__(self) -> str:
        return self.name or self.phone or self.wa_id


# EVA's own handoff reasons, stored in English (apps.agents.engine, the handoff services).
_HANDOFF_REASONS = {
    "staff replied": _("staff replied"),
    "business replied from its phone": _("business replied from its phone"),
    "customer asked for a person": _("customer asked for a person"),
    "outside business hours": _("outside business hours"),
    "the agent asked for a person": _("the agent asked for a person"),
}
_LOW_RELEVANCE = re.compile(r"^no relevant knowledge for (\d+) turns$")
# The notes apps.conversations.services.handoff writes into a thread (stored in English, as the
# API shows them), with what each says in the reader's language.
_SYSTEM_NOTES = (
    (re.compile(r"^Handed to a human: (?P<reason>.*)$", re.S), _("Handed to a human: %(reason)s")),
    (
        re.compile(r"^Returned to the bot by (?P<who>.*)$", re.S),
        _("Returned to the bot by %(who)s"),
    ),
    (re.compile(r"^Closed by (?P<who>.*)$", re.S), _("Closed by %(who)s")),
    (
        re.compile(r"^Assigned to (?P<assignee>\S+) by (?P<who>.*)$", re.S),
        _("Assigned to %(assignee)s by %(who)s"),
    ),
    (re.compile(r"^Unassigned by (?P<who>.*)$", re.S), _("Unassigned by %(who)s")),
)


def handoff_reason_display(reason: str) -> str:
    """A handoff reason in the reader's language when EVA wrote it (a person's or the model's
    words stay as written)."""
    turns = _LOW_RELEVANCE.match(reason)
    if turns:
        return str(_("no relevant knowledge for %(turns)s turns") % {"turns": turns[1]})
    known = _HANDOFF_REASONS.get(reason)
    return str(known) if known is not None else reason


class Conversation(models.Model):
    """A contact's thread on one channel (one WhatsApp number, or the simulator)."""

    class Channel(models.TextChoices):
        WHATSAPP = "whatsapp", _("WhatsApp")
        SIMULATOR = "simulator", _("Simulator")

    class Mode(models.TextChoices):
        BOT = "bot", _("Bot")
        HUMAN = "human", _("Human")
        CLOSED = "closed", _("Closed")

    # Indexed by conversation_per_channel (contact, channel, channel_ref), below.
    contact = models.ForeignKey(
        Contact, on_delete=models.CASCADE, related_name="conversations", db_index=False
    )
    channel = models.CharField(_("channel"), max_length=12, choices=Channel.choices)
    # The WhatsApp session id the customer wrote to; "" for the simulator.
    channel_ref = models.CharField(_("channel reference"), max_length=64, blank=True)
    # Which agent answers (apps.agents.Agent id); None until the engine picks the default agent.
    agent_id = models.BigIntegerField(_("agent"), null=True, blank=True, db_index=True)
    mode = models.CharField(_("mode"), max_length=8, choices=Mode.choices, default=Mode.BOT)
    # A reply typed on the business's own phone hands over to a human until this time; after it
    # the bot answers again on its own.
    human_until = models.DateTimeField(_("human until"), null=True, blank=True)
    handoff_reason = models.CharField(_("handoff reason"), max_length=200, blank=True)
    handoff_at = models.DateTimeField(_("handed off at"), null=True, blank=True)
    assigned_to = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="assigned_conversations",
    )
    unread_count = models.PositiveIntegerField(_("unread"), default=0)
    # Consecutive bot turns whose retrieval was below the agent's relevance floor.
    low_relevance_turns = models.PositiveIntegerField(default=0)
    # The newest inbound message a bot reply has already answered (bursts, duplicates).
    answered_through_id = models.BigIntegerField(default=0)
    last_message_at = models.DateTimeField(_("last message"), null=True, blank=True)
    last_message_preview = models.CharField(max_length=200, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-last_message_at", "-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["contact", "channel", "channel_ref"], name="conversation_per_channel"
            )
        ]
        indexes = [models.Index(fields=["mode", "-last_message_at"], name="conversation_mode")]

    def __str__(self) -> str:
        return f"{self.contact} · {self.channel}"

    @property
    def handoff_reason_display(self) -> str:
        """The handoff reason in the reader's language when EVA wrote it (the stored value
        stays as written: English for EVA's own reasons, a person's or the model's words)."""
        return handoff_reason_display(self.handoff_reason)


class Message(models.Model):
    """One message of a conversation, in either direction."""

    class Direction(models.TextChoices):
        IN = "in", _("Inbound")
        OUT = "out", _("Outbound")

    class Kind(models.TextChoices):
        TEXT = "text", _("Text")
        AUDIO = "audio", _("Audio")
        IMAGE = "image", _("Image")
        DOCUMENT = "document", _("Document")
        SYSTEM = "system", _("System")

    class Sender(models.TextChoices):
        CUSTOMER = "customer", _("Customer")
        BOT = "bot", _("Bot")
        STAFF = "staff", _("Staff")
        BUSINESS = "business", _("Business phone")
        SYSTEM = "system", _("System")

    class Status(models.TextChoices):
        RECEIVED = "received", _("Received")
        QUEUED = "queued", _("Queued")
        SENT = "sent", _("Sent")
        DELIVERED = "delivered", _("Delivered")
        READ = "read", _("Read")
        FAILED = "failed", _("Failed")

    # Indexed by message_thread (conversation, id), below.
    conversation = models.ForeignKey(
        Conversation, on_delete=models.CASCADE, related_name="messages", db_index=False
    )
    direction = models.CharField(max_length=3, choices=Direction.choices)
    sender = models.CharField(max_length=10, choices=Sender.choices)
    kind = models.CharField(max_length=10, choices=Kind.choices, default=Kind.TEXT)
    text = models.TextField(blank=True)
    transcript = models.TextField(blank=True)
    transcript_language = models.CharField(max_length=10, blank=True)
    # {"ref", "mime", "size", "sha256"}: a reference into the shared media storage, never bytes.
    media = models.JSONField(null=True, blank=True)
    # The channel's id of the message (WhatsApp message id). Unique (message_external_id), so a
    # redelivered inbound message is stored once. Outbound replies get it when the gateway
    # acknowledges the send.
    # NULL, not "": many messages have none yet, and only the set ones must be unique.
    external_id = models.CharField(max_length=200, null=True, blank=True)  # noqa: DJ001 - see above
    # The event_id of the outbound command that carries this message to the gateway; unique
    # among the messages that have one (message_command_event_id).
    command_event_id = models.UUIDField(null=True, blank=True)
    status = models.CharField(max_length=10, choices=Status.choices)
    error = models.CharField(max_length=300, blank=True)
    # Staff replies only; indexed where set (message_author), below.
    author = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, db_index=False
    )
    # Bot replies: what produced them, for the inbox, the simulator and cost reports.
    provider = models.CharField(max_length=40, blank=True)
    model = models.CharField(max_length=100, blank=True)
    latency_ms = models.PositiveIntegerField(null=True, blank=True)
    tokens_in = models.PositiveIntegerField(null=True, blank=True)
    tokens_out = models.PositiveIntegerField(null=True, blank=True)
    usage_id = models.BigIntegerField(null=True, blank=True)
    # [{"chunk_id", "document_id", "title", "score"}] of the chunks the reply was grounded on.
    citations = models.JSONField(default=list, blank=True)
    # The bot's last words when it hands the conversation to a person ("I'll connect you with
    # our team"): sent although the conversation is then in human mode.
    is_handoff_notice = models.BooleanField(default=False)
    # The inbound messages this reply answered (a burst gets one reply).
    replied_to_ids = ArrayField(models.BigIntegerField(), default=list, blank=True)
    sent_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["id"]
        # Every inbound message updates each index of this table, at up to a thousand messages a
        # second: only the indexes queries use, none a second one covers, and none holding the
        # NULLs of the columns only some messages have (docs/whatsapp.md, "Performance").
        indexes = [
            models.Index(fields=["conversation", "id"], name="message_thread"),
            models.Index(
                fields=["author"], condition=Q(author__isnull=False), name="message_author"
            ),
        ]
        constraints = [
            # A constraint, not unique=True: that would add a second (LIKE) index on the column.
            models.UniqueConstraint(fields=["external_id"], name="message_external_id"),
            models.UniqueConstraint(
                fields=["command_event_id"],
                condition=Q(command_event_id__isnull=False),
                name="message_command_event_id",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.direction} {self.kind} #{self.pk}"

    @property
    def body(self) -> str:
        """What the message says: its text, else the transcript of a voice note."""
        return self.text or self.transcript

    @property
    def system_note_display(self) -> str:
        """A system note in the reader's language (stored in English: the API's text)."""
        for pattern, template in _SYSTEM_NOTES:
            found = pattern.match(self.text)
            if found:
                values = found.groupdict()
                if "reason" in values:
                    values["reason"] = handoff_reason_display(values["reason"])
                if values.get("who") == "system":
                    values["who"] = str(_("the system"))
                return str(template) % values
        return self.text

    @property
    def chunk_ids(self) -> list[int]:
        return [int(c["chunk_id"]) for c in self.citations or [] if "chunk_id" in c]
