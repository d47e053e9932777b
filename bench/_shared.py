"""Pieces every benchmark needs: a percentile, where the CPU went, how idle CPUs wait, and chunks
written fast (COPY) for retrieval."""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import signal
import struct
from collections.abc import Iterable, Iterator
from typing import Any


def percentile(values: list[float], p: float) -> float:
    """The value below which ``p`` percent of ``values`` lie (nearest rank)."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


def process_cpu_s(pid: int | None, name: str | tuple[str, ...]) -> float | None:
    """CPU seconds (user + system) process ``pid`` has used, if it runs on this machine under a
    command name starting with ``name`` (e.g. "postgres"); else None (a server elsewhere, or not
    Linux)."""
    if not pid:
        return None
    try:
        with open(f"/proc/{pid}/comm") as comm:
            if not comm.read().startswith(name):
                return None
        with open(f"/proc/{pid}/stat") as stat:
            fields = stat.read().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def host_cpu_ticks() -> tuple[int, int] | None:
    """(all CPU ticks, ticks stolen by the hypervisor) of this machine so far, from /proc/stat;
    None where there is no such file. Steal is time a virtual CPU was ready to run and the host
    ran something else: on a shared VM it explains stalls no code path causes."""
    try:
        with open("/proc/stat") as stat:
            fields = [int(value) for value in stat.readline().split()[1:]]
    except (OSError, ValueError):
        return None
    # user nice system idle iowait irq softirq steal (guest time is counted in user already)
    return sum(fields[:8]), fields[7] if len(fields) > 7 else 0


# How an idle virtual CPU waits for work. A KVM guest with the cpuidle-haltpoll driver spins up to
# guest_halt_poll_ns before it halts (Linux's default: 200 µs; adaptive); a halted virtual CPU
# costs a trip through the hypervisor to wake, and the wait counts as steal. Holding
# /dev/cpu_dma_latency at 0 keeps idle CPUs polling, never halting (tuned's approach).
HALT_POLL_NS = "/sys/module/haltpoll/parameters/guest_halt_poll_ns"
CPUIDLE_DRIVER = "/sys/devices/system/cpu/cpuidle/current_driver"
DMA_LATENCY = "/dev/cpu_dma_latency"


def _read(path: str) -> str | None:
    try:
        with open(path) as file:
            return file.read().strip()
    except OSError:
        return None


def idle_describe() -> str:
    """How this machine's idle CPUs wait, in a few words, for a benchmark's header."""
    text = f"cpuidle driver {_read(CPUIDLE_DRIVER) or 'none'}"
    poll_ns = _read(HALT_POLL_NS)
    if poll_ns is not None:
        us = int(poll_ns) // 1000
        text += f", guest halt polling {f'up to {us} µs' if us else 'off'}"
    return text


@contextlib.contextmanager
def idle_polling(setting: str) -> Iterator[None]:
    """While inside, idle CPUs poll for work instead of halting: ``setting`` is "" (unchanged),
    "always" (``/dev/cpu_dma_latency`` held at 0: never halt; let go when the process ends,
    however it ends) or a number of microseconds (the guest halt-polling window; the previous
    value is written back on the way out). Needs root. Raises SystemExit with the reason when
    the machine cannot do it."""
    if not setting:
        yield
        return
    if setting == "always":
        try:
            fd = os.open(DMA_LATENCY, os.O_WRONLY)
        except OSError as exc:
            raise SystemExit(f"--idle-poll always: cannot open {DMA_LATENCY} ({exc})") from exc
        try:
            os.write(fd, struct.pack("i", 0))
            yield
        finally:
            os.close(fd)
        return
    try:
        window_ns = int(setting) * 1000
    except ValueError:
        window_ns = -1
    if window_ns < 0:
        raise SystemExit("--idle-poll wants 'always' or a number of microseconds")
    before = _read(HALT_POLL_NS)
    if before is None:
        raise SystemExit(
            f"--idle-poll {setting}: no {HALT_POLL_NS} (not a KVM guest with the cpuidle-haltpoll "
            "driver); 'always' works wherever /dev/cpu_dma_latency does"
        )
    try:
        with open(HALT_POLL_NS, "w") as file:
            file.write(str(window_ns))
    except OSError as exc:
        raise SystemExit(f"--idle-poll {setting}: cannot write {HALT_POLL_NS} ({exc})") from exc
    # A benchmark stopped with SIGTERM (kill, timeout) puts the value back too.
    stopped = signal.signal(signal.SIGTERM, _exit_on_signal)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, stopped)
        with open(HALT_POLL_NS, "w") as file:
            file.write(before)


def _exit_on_signal(signum: int, _frame: object) -> None:
    raise SystemExit(f"stopped by signal {signum}")


def is_local_host(host: str | None) -> bool:
    """Whether a server named by ``host`` (from a URL) runs on this machine."""
    return not host or host.startswith("/") or host in ("localhost", "127.0.0.1", "::1")


def copy_chunks(document_id: int, model_key: str, rows: Iterable[tuple[int, str, Any]]) -> None:
    """Write (ordinal, text, vector) chunks of a document in the current tenant with COPY, then
    their Spanish full-text vectors: what ingestion stores, without parsing or embedding."""
    from django.db import connection
    from pgvector.psycopg import register_vector
    from psycopg.types.json import Jsonb

    with connection.cursor():
        pass  # makes django-tenants set the tenant's search_path on the connection
    raw = connection.connection
    register_vector(raw)
    now = dt.datetime.now(dt.UTC)
    columns = (
        "document_id, ordinal, text, section, metadata, embedding_model, embedding_dimensions, "
        "embedding, search_config, created_at"
    )
    with (
        raw.cursor() as cursor,
        cursor.copy(f"COPY knowledge_chunk ({columns}) FROM STDIN WITH (FORMAT BINARY)") as copy,
    ):
        types = "int8 int4 text varchar jsonb varchar int4 vector varchar timestamptz"
        copy.set_types(types.split())
        for ordinal, text, vector in rows:
            dims = len(vector)
            copy.write_row(
                [document_id, ordinal, text, "", Jsonb({}), model_key, dims, vector, "spanish", now]
            )
    with connection.cursor() as cursor:
        cursor.execute(
            "UPDATE knowledge_chunk SET search_vector = to_tsvector('spanish', text) "
            "WHERE search_vector IS NULL"
        )
