"""WhatsApp sessions of a tenant: the public index, control commands on the stream, and the
gateway's lifecycle events applied last-write-wins. Tenant B never sees tenant A's numbers."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
from django_tenants.utils import tenant_context

from apps.channels import contract, services
from apps.channels.models import WhatsAppSession
from apps.channels.selectors import (
    phone_tenant_resolve,
    session_tenant_resolve,
    whatsapp_session_list,
)
from apps.tenants.models import WhatsAppSessionIndex

pytestmark = pytest.mark.django_db

T0 = datetime(2026, 11, 25, 22, 0, tzinfo=UTC)


def _control(client) -> list[dict]:
    return [json.loads(f["event"]) for _i, f in client.xrange(contract.control_stream())]


def test_a_new_session_is_indexed_for_its_tenant_only(world):
    with tenant_context(world.tenant_a):
        session = services.whatsapp_session_create(label="Ventas")
        assert session.session_id.startswith("alpha-")
        assert session.status == "new"
        assert list(whatsapp_session_list()) == [session]
    assert session_tenant_resolve(session_id=session.session_id) == world.tenant_a
    assert session_tenant_resolve(session_id="nobody-123") is None
    with tenant_context(world.tenant_b):
        assert list(whatsapp_session_list()) == []
        assert not WhatsAppSession.objects.filter(session_id=session.session_id).exists()


def test_start_stop_logout_publish_control_commands_after_commit(
    world, streams, django_capture_on_commit_callbacks
):
    with tenant_context(world.tenant_a):
        session = services.whatsapp_session_create(label="Ventas")
        with django_capture_on_commit_callbacks(execute=False) as pending:
            services.whatsapp_session_start(session=session)
        # Nothing reaches the gateway before the transaction commits.
        assert _control(streams) == []
        for callback in pending:
            callback()
        with django_capture_on_commit_callbacks(execute=True):
            services.whatsapp_session_stop(session=session)
            services.whatsapp_session_logout(session=session)
        session.refresh_from_db()
        assert session.status == "logout_requested"
    commands = _control(streams)
    assert [(c["type"], c["session_id"], c["tenant_schema"]) for c in commands] == [
        ("start", session.session_id, "alpha"),
        ("stop", session.session_id, "alpha"),
        ("logout", session.session_id, "alpha"),
    ]


def test_status_and_qr_events_apply_last_write_wins(world):
    with tenant_context(world.tenant_a):
        session = services.whatsapp_session_create(label="Ventas")
        sid = session.session_id

        services.whatsapp_session_qr_apply(
            session_id=sid, qr="2@first", attempt=1, gateway_id="gw-1", ts=T0
        )
        services.whatsapp_session_qr_apply(
            session_id=sid,
            qr="2@second",
            attempt=2,
            gateway_id="gw-1",
            ts=T0 + timedelta(seconds=20),
        )
        session.refresh_from_db()
        assert (session.status, session.qr, session.qr_attempt) == ("qr", "2@second", 2)
        assert session.shows_qr

        ready_at = T0 + timedelta(seconds=30)
        services.whatsapp_session_status_apply(
            session_id=sid,
            status="ready",
            wa_state="CONNECTED",
            reason=None,
            phone="5215500000000",
            gateway_id="gw-1",
            ts=ready_at,
        )
        # A late QR (redelivered, older ts) does not roll the session back.
        services.whatsapp_session_qr_apply(
            session_id=sid, qr="2@late", attempt=3, gateway_id="gw-1", ts=T0 + timedelta(seconds=25)
        )
        session.refresh_from_db()
        assert (session.status, session.qr, session.phone) == ("ready", "", "5215500000000")
        assert session.ready_at == ready_at and not session.shows_qr and not session.is_alarm

        services.whatsapp_session_status_apply(
            session_id=sid,
            status="tos_block",
            wa_state="TOS_BLOCK",
            reason="blocked",
            phone=None,
            gateway_id="gw-1",
            ts=ready_at + timedelta(seconds=1),
        )
        session.refresh_from_db()
        assert session.is_alarm and session.wa_state == "TOS_BLOCK"
    assert phone_tenant_resolve(phone="5215500000000") == world.tenant_a


def test_a_number_paired_elsewhere_moves_in_the_index(world):
    with tenant_context(world.tenant_a):
        old = services.whatsapp_session_create(label="Old")
    with tenant_context(world.tenant_b):
        new = services.whatsapp_session_create(label="New")
    for tenant, session in ((world.tenant_a, old), (world.tenant_b, new)):
        with tenant_context(tenant):
            services.whatsapp_session_status_apply(
                session_id=session.session_id,
                status="ready",
                wa_state="CONNECTED",
                reason=None,
                phone="5215511111111",
                gateway_id="gw-1",
                ts=T0,
            )
    assert phone_tenant_resolve(phone="5215511111111") == world.tenant_b
    assert WhatsAppSessionIndex.objects.get(session_id=old.session_id).phone is None
    with tenant_context(world.tenant_b):
        services.whatsapp_session_logout(session=new)
    assert phone_tenant_resolve(phone="5215511111111") is None
