"""Operators' `manage.py dlq` on dead letters made by a real worker: list, show, replay, purge."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import uuid
from datetime import timedelta
from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from django.utils import timezone
from django_tenants.utils import tenant_context

from apps.ops.models import DeadLetter
from apps.ops.services import dead_letter_record
from apps.ops.stream import redis_client
from apps.ops.tests.fixtures import committed_db, wait_until
from workers.diagnostics import DIAG_PREFIX, fails_until_fixed

__all__ = ["committed_db"]
# With the worker: committed_db (see apps/ops/tests/fixtures.py); in-process only: django_db.
with_worker = pytest.mark.usefixtures("committed_db", "celery_worker")


def dlq(*args: str) -> str:
    out = StringIO()
    call_command("dlq", *args, stdout=out)
    return out.getvalue()


def failed_in(tenant: object, key: str, note: str = "") -> DeadLetter:
    with tenant_context(tenant):
        result = fails_until_fixed.delay(key, note=note)
    return wait_until(
        lambda: DeadLetter.objects.filter(task_id=result.id).first(), what="the dead letter"
    )


def ran_in(key: str) -> list[str]:
    return list(redis_client().lrange(f"{DIAG_PREFIX}:ran:{key}", 0, -1))  # type: ignore[arg-type]


def fix(key: str) -> None:
    redis_client().set(f"{DIAG_PREFIX}:fixed:{key}", "1")


@with_worker
def test_list_and_show_give_the_full_context_filtered_by_tenant(world):
    key = uuid.uuid4().hex
    dead_a = failed_in(world.tenant_a, key, note="from A")
    dead_b = failed_in(world.tenant_b, key, note="from B")

    rows = json.loads(dlq("list", "--tenant", "alpha", "--json", "--limit", "0"))
    ids = {row["id"] for row in rows}
    assert dead_a.pk in ids and dead_b.pk not in ids  # B's dead letter is not A's
    row = next(r for r in rows if r["id"] == dead_a.pk)
    assert row["tenant"] == "alpha"
    assert row["task"] == "workers.diagnostics.fails_until_fixed"
    assert row["status"] == "new"
    assert row["error"] == f"cause not fixed for {key}"
    assert row["attempts"] == 1

    beta_ids = {r["id"] for r in json.loads(dlq("list", "--tenant", "beta", "--json"))}
    assert dead_b.pk in beta_ids and dead_a.pk not in beta_ids

    table = dlq("list", "--task", "workers.diagnostics.*", "--since", "1h", "--status", "new")
    assert table.splitlines()[0].split() == [
        "ID", "STATUS", "TENANT", "TASK", "TRIES", "LAST", "FAILURE", "(UTC)", "ERROR",
    ]  # fmt: skip
    assert any(line.split()[:3] == [str(dead_a.pk), "new", "alpha"] for line in table.splitlines())

    shown = json.loads(dlq("show", str(dead_a.pk), "--json"))
    assert shown["payload"]["args"] == [key]
    assert shown["payload"]["kwargs"] == {"note": "from A"}
    assert shown["tenant"] == "alpha"
    assert shown["task_id"] == dead_a.task_id
    assert "ValueError" in shown["traceback"]
    text = dlq("show", str(dead_a.pk))
    assert "tenant:" in text and "alpha" in text and "traceback:" in text


@with_worker
def test_replay_runs_again_in_the_same_tenant_and_succeeds_once_after_the_fix(world):
    key = uuid.uuid4().hex
    dead = failed_in(world.tenant_a, key)

    # Cause not fixed yet: the replay fails, the record stays new with the new failure.
    with pytest.raises(CommandError, match=f"replay failed for dead letter\\(s\\) {dead.pk}"):
        dlq("replay", str(dead.pk), "--wait", "30")
    dead.refresh_from_db()
    assert (dead.status, dead.attempts, dead.replays) == ("new", 2, 1)
    assert dead.replay_task_id == ""
    assert DeadLetter.objects.filter(name=dead.name, payload__args=[key]).count() == 1

    fix(key)
    output = dlq("replay", str(dead.pk), "--wait", "30")
    assert "replayed successfully" in output
    dead.refresh_from_db()
    assert dead.status == "replayed"
    assert dead.replays == 2
    assert ran_in(key) == ["alpha"]  # ran in A's schema, never in B's

    # Replaying again does nothing again.
    again = dlq("replay", str(dead.pk))
    assert "not sent (skipped: already replayed)" in again
    time.sleep(1)
    assert ran_in(key) == ["alpha"]


@with_worker
def test_a_dead_letter_of_tenant_b_replays_in_b_only(world):
    key = uuid.uuid4().hex
    dead = failed_in(world.tenant_b, key)
    fix(key)
    dlq("replay", str(dead.pk), "--wait", "30")
    assert ran_in(key) == ["beta"]


@with_worker
def test_replay_by_filter_needs_confirmation_and_replays_only_matching_new_ones(world):
    key = uuid.uuid4().hex
    # Other tests leave dead letters of the same task; --since limits the filter to ours.
    started = timezone.now().isoformat()
    dead_a = failed_in(world.tenant_a, key)
    dead_b = failed_in(world.tenant_b, key)
    fix(key)
    with pytest.raises(CommandError, match="add --yes"):
        dlq("replay", "--tenant", "beta", "--task", dead_b.name, "--since", started)
    output = dlq(
        "replay",
        *("--tenant", "beta", "--task", "workers.diagnostics.*", "--since", started),
        *("--yes", "--wait", "30"),
    )
    assert output.splitlines()[0].startswith(f"dead letter {dead_b.pk}: sent")
    assert len([line for line in output.splitlines() if ": sent" in line]) == 1
    dead_a.refresh_from_db()
    dead_b.refresh_from_db()
    assert dead_b.status == "replayed"
    assert dead_a.status == "new" and dead_a.replays == 0
    assert ran_in(key) == ["beta"]


@with_worker
def test_discard_and_resolve_close_dead_letters_and_they_are_not_replayed(world):
    key = uuid.uuid4().hex
    dead = failed_in(world.tenant_a, key)
    other = failed_in(world.tenant_a, key)
    assert "discarded" in dlq("discard", str(dead.pk), "--note", "document deleted")
    assert "resolved" in dlq("resolve", str(other.pk))
    dead.refresh_from_db()
    assert dead.status == "discarded" and "document deleted" in dead.note
    fix(key)
    assert "skipped: it is discarded" in dlq("replay", str(dead.pk))
    time.sleep(1)
    assert ran_in(key) == []


def _backdated(status: str, days: int, name: str) -> DeadLetter:
    dead = dead_letter_record(
        source="task",
        name=name,
        payload={"args": [], "kwargs": {}},
        tenant_schema="alpha",
        error="old failure",
        attempts=1,
    )
    moment = timezone.now() - timedelta(days=days)
    DeadLetter.objects.filter(pk=dead.pk).update(
        status=status, last_failed_at=moment, first_failed_at=moment
    )
    return dead


@pytest.mark.django_db
def test_purge_removes_only_old_closed_dead_letters_unless_asked(world):
    name = f"workers.test.purge_{uuid.uuid4().hex}"
    old_new = _backdated("new", 40, name)
    old_discarded = _backdated("discarded", 40, name)
    old_replayed = _backdated("replayed", 40, name)
    recent_discarded = _backdated("discarded", 2, name)

    with pytest.raises(CommandError, match="add --yes"):
        dlq("purge", "--older-than", "30d")
    assert "Would delete" in dlq("purge", "--older-than", "30d", "--dry-run")
    assert DeadLetter.objects.filter(name=name).count() == 4

    dlq("purge", "--older-than", "30d", "--yes")
    left = set(DeadLetter.objects.filter(name=name).values_list("pk", flat=True))
    assert left == {old_new.pk, recent_discarded.pk}
    assert old_discarded.pk not in left and old_replayed.pk not in left

    dlq("purge", "--older-than", "30d", "--status", "new", "--yes")
    assert set(DeadLetter.objects.filter(name=name).values_list("pk", flat=True)) == {
        recent_discarded.pk
    }


@pytest.mark.django_db
def test_a_stream_dead_letter_is_replayed_by_appending_its_entry_again(world):
    stream = f"eva:test:inbound:{uuid.uuid4().hex}"
    dead = dead_letter_record(
        source="stream",
        name="eva:inbound",
        payload={"stream": stream, "entry_id": "1-0", "fields": {"type": "message", "n": "1"}},
        tenant_schema=None,
        error="handler kept failing",
        attempts=5,
    )
    assert dead.tenant_schema == ""
    assert "appended to" in dlq("replay", str(dead.pk))
    entries = redis_client().xrange(stream)
    assert [fields for _id, fields in entries] == [{"type": "message", "n": "1"}]  # type: ignore[union-attr]
    dead.refresh_from_db()
    assert dead.status == "replayed"
    assert "already replayed" in dlq("replay", str(dead.pk))
    assert redis_client().xlen(stream) == 1


@pytest.mark.django_db
def test_bad_ids_and_filters_are_clear_command_errors(world):
    with pytest.raises(CommandError, match="dead letter 987654321 does not exist"):
        dlq("show", "987654321")
    with pytest.raises(CommandError, match="'abc' is not a dead-letter id"):
        dlq("show", "abc")
    with pytest.raises(CommandError, match=r"dead letter\(s\) do not exist: 987654321"):
        dlq("replay", "987654321")
    with pytest.raises(CommandError, match="give dead-letter ids, or filters"):
        dlq("replay")
    with pytest.raises(CommandError, match="not both"):
        dlq("replay", "1", "--tenant", "alpha")
    with pytest.raises(CommandError, match="--since: 'yesterday-ish' is neither an age"):
        dlq("list", "--since", "yesterday-ish")
    with pytest.raises(CommandError, match="--older-than: 'soon' is not an age"):
        dlq("purge", "--older-than", "soon", "--yes")
    with pytest.raises(CommandError, match="invalid choice: 'lost'"):
        dlq("list", "--status", "lost")
    gone = dead_letter_record(
        source="task",
        name="workers.diagnostics.tenant_probe",
        payload={"args": [], "kwargs": {}},
        tenant_schema="deleted_tenant",
        error="x",
        attempts=1,
    )
    with pytest.raises(CommandError, match="'deleted_tenant', which no longer exists"):
        dlq("replay", str(gone.pk))


def _manage(*args: str) -> subprocess.CompletedProcess[str]:
    from django.conf import settings

    from conftest import database_url_for_subprocess

    env = os.environ | {
        "DATABASE_URL": database_url_for_subprocess(),
        "REDIS_URL": str(settings.REDIS_URL),
    }
    return subprocess.run(
        [sys.executable, "manage.py", "dlq", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=False,
    )


@pytest.mark.django_db
def test_exit_codes_from_the_command_line(world):
    missing = _manage("show", "987654321")
    assert missing.returncode == 1
    assert "dead letter 987654321 does not exist" in missing.stderr
    bad_filter = _manage("list", "--status", "lost")
    assert bad_filter.returncode == 2
    assert "invalid choice: 'lost'" in bad_filter.stderr
    listing = _manage("list", "--tenant", "nobody", "--json")
    assert listing.returncode == 0, listing.stderr
    assert json.loads(listing.stdout) == []
    helptext = _manage("purge", "--help")
    assert helptext.returncode == 0
    assert "--older-than AGE" in helptext.stdout and "confirmation" in helptext.stdout


@pytest.mark.usefixtures("committed_db")
def test_a_replay_that_succeeds_before_the_replay_command_commits_is_marked_replayed():
    """dead_letter_replay sends the task inside its transaction; a fast worker reports success
    while that transaction still holds the row (the flake this test pins down: the success
    was lost and `dlq replay --wait` reported no outcome)."""
    import threading

    from django.db import connections, transaction

    from apps.ops.services import dead_letter_mark_replayed

    dead = dead_letter_record(
        source="task",
        name="workers.diagnostics.fails_until_fixed",
        payload={},
        tenant_schema="alpha",
        error="ValueError: boom",
        attempts=1,
        task_id=f"race-{uuid.uuid4().hex}",
    )
    replay_id = f"replay-{dead.pk}-{uuid.uuid4().hex}"
    locked, release = threading.Event(), threading.Event()
    marked: list[bool] = []

    def replay_command() -> None:  # what dead_letter_replay does before it commits
        try:
            with transaction.atomic():
                DeadLetter.objects.select_for_update().filter(pk=dead.pk).update(
                    replay_task_id=replay_id, replays=1
                )
                locked.set()
                release.wait(10)
        finally:
            connections.close_all()

    def worker_success() -> None:
        try:
            ok = dead_letter_mark_replayed(dead_letter_id=dead.pk, replay_task_id=replay_id)
            marked.append(ok)
        finally:
            connections.close_all()

    command = threading.Thread(target=replay_command)
    command.start()
    assert locked.wait(10)
    worker = threading.Thread(target=worker_success)
    worker.start()
    worker.join(0.5)
    assert worker.is_alive(), "the success waits for the replay command's commit"
    release.set()
    command.join(10)
    worker.join(10)
    assert marked == [True]
    dead.refresh_from_db()
    assert (dead.status, dead.replay_task_id, dead.replays) == ("replayed", "", 1)
    DeadLetter.objects.filter(pk=dead.pk).delete()
