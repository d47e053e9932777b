"""Start-up checks: settings that would lose tasks are refused (Django checks and workers)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.core.management import call_command
from django.core.management.base import SystemCheckError

from apps.ops.checks import reliability_problems
from workers.base import _refuse_unreliable_settings


def test_the_shipped_settings_pass():
    assert reliability_problems() == []
    _refuse_unreliable_settings()  # what every worker runs at start


def test_a_time_limit_above_the_visibility_timeout_is_an_error(settings):
    settings.CELERY_TASK_TIME_LIMIT = 7200
    settings.CELERY_TASK_SOFT_TIME_LIMIT = 7000
    settings.CELERY_BROKER_TRANSPORT_OPTIONS = {"visibility_timeout": 3600}
    assert [p.id for p in reliability_problems()] == ["ops.E002"]
    with pytest.raises(SystemCheckError, match="visibility timeout"):
        call_command("check")
    with pytest.raises(SystemExit, match=r"\[ops.E002\]"):
        _refuse_unreliable_settings()


def test_early_acks_lost_redelivery_and_soft_limit_above_hard_are_errors(settings):
    settings.CELERY_TASK_ACKS_LATE = False
    settings.CELERY_TASK_REJECT_ON_WORKER_LOST = False
    settings.CELERY_TASK_SOFT_TIME_LIMIT = settings.CELERY_TASK_TIME_LIMIT + 1
    settings.CELERY_WORKER_PREFETCH_MULTIPLIER = 4
    assert {p.id for p in reliability_problems()} == {
        "ops.E003",
        "ops.E004",
        "ops.E005",
        "ops.W001",
    }


def test_a_worker_with_early_acks_refuses_to_start():
    """A real worker process, with settings that would lose tasks, exits with the reason."""
    root = Path(__file__).resolve().parents[3]
    worker = subprocess.run(
        [sys.executable, "-m", "celery", "-A", "eva", "worker", "--pool=solo", "-Q", "none"],
        cwd=root,
        env=os.environ | {"DJANGO_SETTINGS_MODULE": "apps.ops.tests.unreliable_settings"},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert worker.returncode != 0
    assert "[ops.E004]" in worker.stdout + worker.stderr
    assert "ready" not in worker.stdout.lower()
