"""The benchmarks' machine helpers: a setting they change is always put back."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import _shared
import pytest


@pytest.fixture
def halt_poll(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A stand-in for the haltpoll module's parameter file, holding the machine's value."""
    path = tmp_path / "guest_halt_poll_ns"
    path.write_text("0\n")
    monkeypatch.setattr(_shared, "HALT_POLL_NS", str(path))
    return path


def test_idle_polling_sets_the_window_and_puts_the_old_one_back(halt_poll: Path) -> None:
    with _shared.idle_polling("5000"):
        assert halt_poll.read_text() == "5000000"
        assert "up to 5000 µs" in _shared.idle_describe()
    assert halt_poll.read_text() == "0"
    assert "guest halt polling off" in _shared.idle_describe()


def test_idle_polling_puts_the_old_window_back_when_the_run_fails(halt_poll: Path) -> None:
    halt_poll.write_text("200000")
    with pytest.raises(RuntimeError), _shared.idle_polling("1000"):
        raise RuntimeError("the benchmark failed")
    assert halt_poll.read_text() == "200000"


def test_idle_polling_puts_the_old_window_back_when_the_run_is_terminated(halt_poll: Path) -> None:
    handler = signal.getsignal(signal.SIGTERM)
    with pytest.raises(SystemExit, match="stopped by signal"), _shared.idle_polling("5000"):
        os.kill(os.getpid(), signal.SIGTERM)  # `kill` or `timeout` stopping the benchmark
    assert halt_poll.read_text().strip() == "0"
    assert signal.getsignal(signal.SIGTERM) == handler  # the handler is given back


@pytest.mark.parametrize("setting", ["-5", "5ms", "fast"])
def test_idle_polling_refuses_what_is_not_a_window(halt_poll: Path, setting: str) -> None:
    with (
        pytest.raises(SystemExit, match="'always' or a number of microseconds"),
        _shared.idle_polling(setting),
    ):
        pass
    assert halt_poll.read_text() == "0\n"


@pytest.mark.parametrize(
    ("missing", "setting", "reason"),
    [
        ("HALT_POLL_NS", "200", "not a KVM guest with the cpuidle-haltpoll driver"),
        ("DMA_LATENCY", "always", "cannot open"),
    ],
)
def test_idle_polling_says_why_the_machine_cannot(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, missing: str, setting: str, reason: str
) -> None:
    monkeypatch.setattr(_shared, missing, str(tmp_path / "absent"))
    with pytest.raises(SystemExit, match=reason), _shared.idle_polling(setting):
        pass


def test_idle_polling_always_holds_the_latency_request_open(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    request = tmp_path / "cpu_dma_latency"
    request.write_bytes(b"")
    monkeypatch.setattr(_shared, "DMA_LATENCY", str(request))
    before = len(os.listdir("/proc/self/fd"))
    with _shared.idle_polling("always"):
        # Linux honours the request while the file stays open: 0 µs, a 32-bit integer.
        assert request.read_bytes() == (0).to_bytes(4, "little")
        assert len(os.listdir("/proc/self/fd")) == before + 1
    assert len(os.listdir("/proc/self/fd")) == before
