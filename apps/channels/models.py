from __future__ import annotations

from datetime import timedelta

from django.db import models
from django.utils import timezone
from django.utils.translation import gettext_lazy as _


class WhatsAppSession(models.Model):
    """One WhatsApp number of the tenant, run by gateway-node as a whatsapp-web.js session.

    ``status`` mirrors the gateway's lifecycle (``session_status`` events of the stream contract)
    plus the states the dashboard sets while a command travels to the gateway. Its public-schema
    twin is ``apps.tenants.models.WhatsAppSessionIndex`` (session id → tenant).
    """

    class Status(models.TextChoices):
        NEW = "new", _("Not connected")
        START_REQUESTED = "start_requested", _("Starting…")
        STOP_REQUESTED = "stop_requested", _("Stopping…")
        LOGOUT_REQUESTED = "logout_requested", _("Logging out…")
        # The gateway's statuses (contracts/streams/inbound/session_status.schema.json).
        STARTING = "starting", _("Starting")
        QR = "qr", _("Waiting for QR scan")
        AUTHENTICATED = "authenticated", _("Authenticated")
        READY = "ready", _("Connected")
        AUTH_FAILURE = "auth_failure", _("Authentication failed")
        STATE_CHANGED = "state_changed", _("State changed")
        DISCONNECTED = "disconnected", _("Disconnected")
        RECONNECTING = "reconnecting", _("Reconnecting")
        NOT_READY = "not_ready", _("Not ready in time")
        TOS_BLOCK = "tos_block", _("Blocked by WhatsApp")
        UNPAIRED = "unpaired", _("Unpaired")
        LOCK_CONFLICT = "lock_conflict", _("Running elsewhere")
        LOCK_LOST = "lock_lost", _("Lock lost")
        STOPPED = "stopped", _("Stopped")
        LOGGED_OUT = "logged_out", _("Logged out")
        FAILED = "failed", _("Failed")

    # Statuses an operator must look at (docs/streams.md: "Alarm on ...").
    ALARMS = frozenset(
        {
            "auth_failure",
            "not_ready",
            "tos_block",
            "unpaired",
            "lock_conflict",
            "lock_lost",
            "failed",
        }
    )
    # Statuses in which the gateway runs (or is about to run) the session.
    RUNNING = frozenset(
        {
            "start_requested",
            "starting",
            "qr",
            "authenticated",
            "ready",
            "state_changed",
            "disconnected",
            "reconnecting",
            "not_ready",
        }
    )

    session_id = models.CharField(_("session id"), max_length=64, unique=True)
    label = models.CharField(_("label"), max_length=80)
    status = models.CharField(
        _("status"), max_length=32, choices=Status.choices, default=Status.NEW
    )
    wa_state = models.CharField(_("WhatsApp state"), max_length=64, blank=True)
    reason = models.TextField(_("reason"), blank=True)
    phone = models.CharField(_("phone"), max_length=20, blank=True)
    gateway_id = models.CharField(_("gateway"), max_length=128, blank=True)
    # ``ts`` of the last applied session_status/qr event: events are applied last-write-wins
    # by the gateway's timestamp, so a late, redelivered entry never rolls the status back.
    status_at = models.DateTimeField(_("status at"), null=True, blank=True)
    qr = models.TextField(_("QR payload"), blank=True)
    qr_attempt = models.PositiveIntegerField(default=0)
    qr_at = models.DateTimeField(_("QR at"), null=True, blank=True)
    ready_at = models.DateTimeField(_("connected since"), null=True, blank=True)
    created_at = models.DateTimeField(_("created at"), auto_now_add=True)
    updated_at = models.DateTimeField(_("updated at"), auto_now=True)

    class Meta:
        ordering = ["created_at", "id"]

    def __str__(self) -> str:
        return f"{self.label} ({self.session_id})"

    @property
    def is_alarm(self) -> bool:
        return self.status in self.ALARMS

    @property
    def is_running(self) -> bool:
        return self.status in self.RUNNING

    @property
    def request_unanswered(self) -> bool:
        """A start/stop/logout no gateway reacted to within a minute. Gateways read control
        commands from the moment they start (their groups begin at ``$``), so a command sent
        while none ran is never seen: the dashboard says so and the owner sends it again."""
        requested = {"start_requested", "stop_requested", "logout_requested"}
        return self.status in requested and self.updated_at < timezone.now() - timedelta(seconds=60)

    @property
    def shows_qr(self) -> bool:
        """The QR means something only while the gateway waits for a scan."""
        return self.status == self.Status.QR and bool(self.qr)
