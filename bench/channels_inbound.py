"""Inbound WhatsApp path without the model: stream → consume_inbound machinery → PostgreSQL.

Measures, in one run and on the same Valkey and PostgreSQL:

* **raw**: XADD → XREADGROUP → XACK of the same entries, nothing else (the baseline);
* **EVA**: XADD → InboundConsumer configured as ``manage.py consume_inbound`` configures it
  (contract validation, tenant from the public index, idempotent storage of each read by one
  ``eva_inbound_messages`` call in the tenant's schema, sent to PostgreSQL and finished once the
  next read is in and prepared, asynchronous commit) → XACK once the
  database's log on disk covers the entry (checked every EVA_INBOUND_ACK_DELAY_MS; a flush after
  that long without new entries). The drain ends with a flush and the last XACK.

Each consumer runs in its own process, as ``consume_inbound`` does in production, while this
process plays the gateway (one XADD per event). For each path: the latency from XADD to "read"
(raw) or "stored and committed" (EVA; also "on disk and acknowledged") at paced rates
(p50/p99), and the drain throughput of a pre-filled stream. Replies are not scheduled (no
hooks, so no stored message is built as a Django object either): this is the channel's own
cost. The tenant starts with ``--history`` messages.

For each paced run it also prints where the CPU went, per event: the consumer, its PostgreSQL
backend and Valkey (read from /proc when the servers run on this machine), this process
("producer"), and the share of the machine's CPU time the hypervisor took ("steal"): on a
shared virtual machine a run with a high steal is a run on fewer cores than it says.

    .venv/bin/python bench/channels_inbound.py [--seconds 5] [--rates 100,1000] [--drain 5000]

Creates a throwaway database (``bench_eva_channels``, dropped at the end) on the server named by
DATABASE_URL (or the embedded one) and uses stream keys under a private prefix. Goal: p99 under
10 ms at 1,000 events/s on 2 cores, consumer cost under 5x raw Redis.
"""

from __future__ import annotations

import argparse
import gc
import json
import multiprocessing
import os
import statistics
import sys
import time
import uuid
from pathlib import Path
from typing import Any

# bench/ is this script's own directory, first on sys.path
from _shared import (
    host_cpu_ticks,
    idle_describe,
    idle_polling,
    is_local_host,
    percentile,
    process_cpu_s,
)

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "eva.settings")
os.environ.setdefault("DEBUG", "0")
os.environ.setdefault("SECRET_KEY", "bench-only-secret-key-not-for-production-0123456789")
os.environ.setdefault("LOG_LEVEL", "warning")
os.environ.setdefault("DATABASE_CONN_MAX_AGE", "0")
os.environ["EVA_TEST_DATABASE_NAME"] = "bench_eva_channels"
os.environ["EVA_STREAM_PREFIX"] = f"bench{os.getpid()}"

SESSION = "bench-session-1"
CUSTOMERS = 50  # distinct customers writing in turn


def message_event(i: int) -> dict[str, Any]:
    chat = f"5215{i % CUSTOMERS:08d}@c.us"
    return {
        "v": 1,
        "type": "message",
        "session_id": SESSION,
        "tenant_schema": "bench",
        "event_id": str(uuid.uuid4()),
        "ts": "2026-11-25T22:30:00.123Z",
        "wa_id": f"false_{chat}_{uuid.uuid4().hex[:20].upper()}",
        "chat_id": chat,
        "from": chat,
        "from_phone": chat.split("@")[0],
        "push_name": "Cliente",
        "msg_type": "chat",
        "body": f"Hola, ¿cuánto cuesta el producto {i}?",
        "wa_timestamp": "2026-11-25T22:29:58.000Z",
        "has_media": False,
        "media": None,
        "media_error": None,
        "quoted_wa_id": None,
        "is_group": False,
    }


class AckRecorder:
    """The consumer's Redis client, noting when each entry is acknowledged."""

    def __init__(self, client: Any, acked: dict[str, float]) -> None:
        self._client = client
        self._acked = acked

    def __getattr__(self, name: str) -> Any:
        return getattr(self._client, name)

    def xack(self, stream: str, group: str, *entry_ids: str) -> Any:
        outcome = self._client.xack(stream, group, *entry_ids)
        now = time.monotonic()
        for entry_id in entry_ids:
            self._acked[entry_id] = now
        return outcome


def consumer_process(
    mode: str, group: str, expected: int, batch: int, pipe: Any, warmup: int = 0
) -> None:
    """Consume ``expected`` events in ``group`` (the first ``warmup`` of them not measured: no
    handler figures for their reads); send back {event_id: monotonic time stored and
    committed}, {entry_id: monotonic time acknowledged once on disk} (EVA), the busy time from
    the first read to the last acknowledgement, and per-read handler figures. Waits for "exit"
    before it closes its connections, so that their CPU time can still be read."""
    from django.db import connection

    from apps.channels import contract
    from apps.channels.consumer import InboundConsumer
    from apps.channels.inbound import InboundEventHandler
    from apps.channels.publisher import redis_client

    client = redis_client()
    stream = contract.inbound_stream()
    done: dict[str, float] = {}
    durable: dict[str, float] = {}
    first_read: list[float] = []
    handling: list[tuple[int, float, float]] = []  # (events, ms, CPU ms) per read, EVA only
    if mode == "EVA":
        # A consumer runs for days: its connection is open and its statements are planned.
        # Measure that steady state, not a new process's first reads.
        warm = InboundEventHandler(wait_for_disk=False)
        for size in (1, 5, 10, 20) * 3:
            warm.handle_batch([message_event(n) for n in range(size)])
        warm.make_durable()
    backend_pid = None
    if mode == "EVA":
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_backend_pid()")
            backend_pid = cursor.fetchone()[0]
    gc.collect()  # as manage.py consume_inbound does before its loop
    gc.freeze()
    pipe.send(("ready", backend_pid))
    if mode == "raw":
        while len(done) < expected:
            response = client.xreadgroup(group, "raw", {stream: ">"}, count=batch, block=1000)
            for _s, entries in response or []:
                first_read or first_read.append(time.monotonic())
                events = [json.loads(fields["event"])["event_id"] for _id, fields in entries]
                client.xack(stream, group, *[entry_id for entry_id, _fields in entries])
                now = time.monotonic()
                for event_id in events:
                    done[event_id] = now
    else:
        # Configured as manage.py consume_inbound configures it.
        from django.conf import settings

        handler = InboundEventHandler(wait_for_disk=False)

        def handle_read(events: list[dict[str, Any]], connection_needed: Any) -> Any:
            first_read or first_read.append(time.monotonic())
            cpu = -time.process_time()
            begin = time.monotonic()

            def needed() -> None:
                # The read before is finished here: its time is not this read's.
                nonlocal cpu, begin
                cpu += time.process_time()
                connection_needed()
                cpu -= time.process_time()
                begin = time.monotonic()

            # Prepared, then sent once the read before is finished; stored while the next read
            # is made.
            finish = handler.submit_batch(events, needed)
            cpu += time.process_time()

            def finished() -> list[BaseException | None]:
                nonlocal cpu
                started = time.process_time()
                outcomes = finish()  # committed when it returns
                now = time.monotonic()
                if len(done) >= warmup:
                    cpu += time.process_time() - started
                    handling.append((len(events), (now - begin) * 1000, cpu * 1000))
                for event, outcome in zip(events, outcomes, strict=True):
                    if outcome is None:
                        done[event["event_id"]] = now
                return outcomes

            return finished

        consumer = InboundConsumer(
            client=AckRecorder(client, durable),
            submit_handler=handle_read,
            make_durable=handler.make_durable,
            durable_position=handler.durable_position,
            ack_delay_ms=settings.EVA_INBOUND_ACK_DELAY_MS,
            dead_letter=lambda dead: print("dead letter:", dead.error),
            group=group,
            consumer="eva",
            batch=batch,
            block_ms=1000,
            trim_every_s=0,
        )
        while len(done) < expected:
            consumer.step()
        # All stored: make the rest durable and acknowledge it now rather than after the idle
        # wait (ack_delay_ms) the consumer allows the database to write it on its own.
        consumer.flush()
    pipe.send((done, durable, time.monotonic() - first_read[0], handling))
    pipe.recv()  # "exit"
    connection.close()


def start_consumer(
    mode: str, group: str, expected: int, batch: int, warmup: int = 0
) -> tuple[Any, Any, int | None]:
    """The consumer process, its end of the pipe, and its PostgreSQL backend's pid (EVA)."""
    ours, theirs = multiprocessing.Pipe()
    process = multiprocessing.get_context("fork").Process(
        target=consumer_process, args=(mode, group, expected, batch, theirs, warmup)
    )
    process.start()
    ready = ours.recv() if ours.poll(60) else None
    if not ready or ready[0] != "ready":
        raise SystemExit(f"the {mode} consumer did not start")
    return process, ours, ready[1]


def finish(process: Any, pipe: Any, timeout: float, before_exit: Any = None) -> tuple[Any, ...]:
    """The consumer's figures; ``before_exit()`` runs while it still holds its connections."""
    if not pipe.poll(timeout):
        process.kill()
        raise SystemExit("the consumer did not finish in time: it cannot keep up")
    outcome = pipe.recv()
    if before_exit is not None:
        before_exit()
    pipe.send("exit")
    process.join()
    return tuple(outcome)


class CpuAccount:
    """Where the CPU time of a measured run went: this process (playing the gateway), the
    consumer, its PostgreSQL backend and Valkey (each when it runs on this machine), and the
    share of the machine's CPU time the hypervisor took (steal)."""

    def __init__(self, pids: dict[str, tuple[int | None, str | tuple[str, ...]]]) -> None:
        self.pids = pids
        self.start: dict[str, float | None] = {}
        self.spent: dict[str, float | None] = {}
        self.ticks: tuple[int, int] | None = None
        self.steal: float | None = None

    def _sample(self) -> dict[str, float | None]:
        sample = {name: process_cpu_s(pid, comm) for name, (pid, comm) in self.pids.items()}
        sample["producer"] = time.process_time()
        return sample

    def begin(self) -> None:
        self.start = self._sample()
        self.ticks = host_cpu_ticks()

    def end(self) -> None:
        now = self._sample()
        for name, before in self.start.items():
            after = now.get(name)
            self.spent[name] = None if before is None or after is None else after - before
        ticks = host_cpu_ticks()
        if ticks and self.ticks and ticks[0] > self.ticks[0]:
            self.steal = (ticks[1] - self.ticks[1]) / (ticks[0] - self.ticks[0])

    def summary(self, events: int) -> str:
        parts = [
            f"{name} {spent / events * 1e6:.0f}"
            for name, spent in self.spent.items()
            if spent is not None
        ]
        text = "CPU per event (µs): " + ", ".join(parts)
        if self.steal is not None:
            text += f"; steal {self.steal:.0%} of the machine's CPU time"
        return text


def _pin_parse(value: str) -> list[set[int] | None]:
    """``--pin``: four CPU numbers or '-' (any)."""
    if not value:
        return []
    parts = value.split(",")
    try:
        cpus = [None if part.strip() == "-" else {int(part)} for part in parts]
    except ValueError:
        cpus = []
    if len(cpus) != 4 or any(c is not None and not c <= os.sched_getaffinity(0) for c in cpus):
        raise SystemExit(f"--pin wants four CPUs of {sorted(os.sched_getaffinity(0))} or '-'")
    return cpus


_EVERYWHERE = os.sched_getaffinity(0)


def _place(pin: list[set[int] | None], pids: tuple[int | None, ...]) -> None:
    """Keep each process on its CPU (None: anywhere again)."""
    for pid, cpus in zip(pids, pin, strict=True):
        if pid:
            os.sched_setaffinity(pid, cpus or _EVERYWHERE)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=5.0, help="per paced measurement")
    parser.add_argument(
        "--warmup",
        type=float,
        default=1.0,
        help="seconds at the same rate before each paced measurement, not counted",
    )
    parser.add_argument("--rates", default="100,1000", help="paced rates, events/s")
    parser.add_argument("--drain", type=int, default=5000, help="events in the drain test")
    parser.add_argument(
        "--drain-rounds", type=int, default=3, help="drains per path, alternated (median)"
    )
    parser.add_argument("--batch", type=int, default=None, help="entries per read (EVA default)")
    parser.add_argument(
        "--history", type=int, default=20000, help="messages stored before measuring"
    )
    parser.add_argument(
        "--pin",
        default="",
        metavar="C,P,V,G",
        help="CPU for the consumer, its PostgreSQL backend, Valkey and this process (the "
        "gateway) during the paced runs, '-' for any: e.g. 0,1,0,1 (servers on this machine)",
    )
    parser.add_argument(
        "--idle-poll",
        default="",
        metavar="US|always",
        help="during the run, idle CPUs poll for work before halting: up to US microseconds "
        "(KVM guest halt polling; Linux's default is 200) or 'always' (never halt); the "
        "machine's setting is put back afterwards. Needs root",
    )
    args = parser.parse_args()
    with idle_polling(args.idle_poll):
        measure(args)


def measure(args: argparse.Namespace) -> None:
    import django

    django.setup()
    from django.conf import settings
    from django.db import connection
    from django.test.utils import CaptureQueriesContext, setup_databases, teardown_databases
    from django_tenants.utils import tenant_context

    from apps.accounts.services import tenant_onboard
    from apps.channels import contract, services
    from apps.channels.consumer import InboundConsumer
    from apps.channels.inbound import InboundEventHandler
    from apps.channels.publisher import redis_client
    from apps.tenants.models import WhatsAppSessionIndex

    batch = args.batch or settings.EVA_INBOUND_BATCH
    pin = _pin_parse(args.pin)
    print("Setting up a throwaway database…", flush=True)
    old = setup_databases(verbosity=0, interactive=False)
    client = redis_client()
    stream = contract.inbound_stream()
    valkey_pid: int | None = None
    try:
        tenant = tenant_onboard(
            slug="bench", name="Bench", owner_email="owner@bench.test", owner_password=None
        ).tenant
        with tenant_context(tenant):
            session = services.whatsapp_session_create(label="Bench")
        WhatsAppSessionIndex.objects.filter(session_id=session.session_id).update(
            session_id=SESSION
        )
        with tenant_context(tenant):
            type(session).objects.filter(pk=session.pk).update(session_id=SESSION)
        connection.set_schema_to_public()
        counter = 0

        # Warm-up: a tenant with history (its customers' contacts and conversations exist, and
        # ``--history`` messages), vacuumed and analyzed as autovacuum keeps a live database, and
        # checkpointed, so that the measurements do not start with the warm-up's own backlog.
        client.xgroup_create(stream, "warmup", id="$", mkstream=True)
        for start in range(0, max(args.history, CUSTOMERS), 1000):
            pipe_ = client.pipeline(transaction=False)
            for n in range(start, min(start + 1000, max(args.history, CUSTOMERS))):
                pipe_.xadd(stream, {"event": json.dumps(message_event(n))})
            pipe_.execute()
        counter += max(args.history, CUSTOMERS)
        InboundConsumer(
            client=client,
            batch_handler=InboundEventHandler().handle_batch,
            dead_letter=lambda dead: print("dead letter:", dead.error),
            group="warmup",
            batch=500,
            trim_every_s=0,
        ).run(until_idle=True)
        with tenant_context(tenant), connection.cursor() as cursor:
            cursor.execute("VACUUM ANALYZE")
            cursor.execute("CHECKPOINT")
        connection.close()

        gc.collect()  # the producer (this process) should not stall on collections either
        gc.freeze()
        results: list[tuple[str, str, float, float, str, str, float | None]] = []
        # The CPU time of the servers is read from /proc when they run on this machine.
        local_database = is_local_host(str(settings.DATABASES["default"]["HOST"]))
        if is_local_host(client.connection_pool.connection_kwargs.get("host")):
            valkey_pid = int(client.info("server")["process_id"])
        for rate in [float(r) for r in args.rates.split(",")]:
            for mode in ("raw", "EVA"):
                client.delete(stream)
                group = f"bench-{mode}"
                client.xgroup_create(stream, group, id="0", mkstream=True)
                # A fresh process (forked from this one: its first reads copy pages) and a
                # stream, group and tables it has not touched yet: the first --warmup seconds
                # at the same rate are not counted, for either path.
                warmup = int(rate * args.warmup)
                count = int(rate * args.seconds)
                process, pipe, backend = start_consumer(mode, group, warmup + count, batch, warmup)
                if pin:
                    _place(pin, (process.pid, backend, valkey_pid, os.getpid()))
                account = CpuAccount(
                    {
                        "consumer": (process.pid, "python"),
                        "PostgreSQL": (backend if local_database else None, "postgres"),
                        "Valkey": (valkey_pid, ("valkey", "redis")),
                    }
                )
                sent: dict[str, float] = {}
                entry_of: dict[str, str] = {}
                interval = 1.0 / rate
                begin = time.monotonic()
                for n in range(warmup + count):
                    delay = begin + n * interval - time.monotonic()
                    if delay > 0:
                        time.sleep(delay)
                    event = message_event(counter + n)
                    if n < warmup:
                        client.xadd(stream, {"event": json.dumps(event)})
                        continue
                    if n == warmup:
                        account.begin()
                    sent[event["event_id"]] = time.monotonic()
                    entry_of[event["event_id"]] = client.xadd(stream, {"event": json.dumps(event)})
                counter += warmup + count
                done, durable, _busy, handling = finish(
                    process, pipe, timeout=120, before_exit=account.end
                )
                latencies = [(done[key] - started) * 1000 for key, started in sent.items()]
                acked = [
                    (durable[entry_of[key]] - sent[key]) * 1000
                    for key in sent
                    if entry_of[key] in durable
                ]
                reads = (
                    f"on disk and acknowledged p50/p99 {statistics.median(acked):.1f}/"
                    f"{percentile(acked, 99):.1f} ms; "
                    f"{statistics.mean(n for n, _ms, _cpu in handling):.1f} events/read, "
                    "handler (sent → stored) p50/p99 "
                    f"{statistics.median(ms for _n, ms, _cpu in handling):.2f}/"
                    f"{percentile([ms for _n, ms, _cpu in handling], 99):.2f} ms "
                    f"({statistics.median(cpu for _n, _ms, cpu in handling):.2f} ms of it "
                    "consumer CPU)"
                    if handling
                    else ""
                )
                results.append(
                    (
                        f"{rate:.0f}/s",
                        mode,
                        statistics.median(latencies),
                        percentile(latencies, 99),
                        reads,
                        account.summary(count),
                        account.steal,
                    )
                )

        if pin:  # the drains run unplaced (their consumers are forked from this process)
            _place([None] * 4, (None, None, valkey_pid, os.getpid()))

        # Alternated, --drain-rounds times: raw Redis alone varies by half from one drain to the
        # next on a shared machine; the medians are compared.
        drains: dict[str, list[float]] = {"raw": [], "EVA": []}
        for round_ in range(args.drain_rounds):
            for mode in ("raw", "EVA"):
                client.delete(stream)
                group = f"drain-{mode}-{round_}"
                client.xgroup_create(stream, group, id="0", mkstream=True)
                pipe_ = client.pipeline(transaction=False)
                for n in range(args.drain):
                    pipe_.xadd(stream, {"event": json.dumps(message_event(counter + n))})
                pipe_.execute()
                counter += args.drain
                process, pipe, _backend = start_consumer(mode, group, args.drain, batch)
                busy = finish(process, pipe, timeout=600)[-2]
                drains[mode].append(args.drain / busy)
        drain = {mode: statistics.median(figures) for mode, figures in drains.items()}

        # Statements per event, counted apart (counting slows the timed runs down).
        client.delete(stream)
        client.xgroup_create(stream, "count", id="0", mkstream=True)
        counted = 500
        for n in range(counted):
            client.xadd(stream, {"event": json.dumps(message_event(counter + n))})
        counter += counted
        with CaptureQueriesContext(connection) as queries:
            InboundConsumer(
                client=client,
                submit_handler=InboundEventHandler().submit_batch,
                dead_letter=lambda dead: print("dead letter:", dead.error),
                group="count",
                batch=batch,
                trim_every_s=0,
            ).run(until_idle=True)
        statements = len(queries.captured_queries)
        round_trips = []
        with connection.cursor() as cursor:
            for _ in range(200):
                begin = time.perf_counter()
                cursor.execute("SELECT 1")
                cursor.fetchone()
                round_trips.append((time.perf_counter() - begin) * 1000)
        validation = []
        for n in range(500):
            event = message_event(n)
            begin = time.perf_counter()
            contract.validate(event)
            validation.append((time.perf_counter() - begin) * 1000)
    finally:
        if pin and valkey_pid:  # a server outlives the benchmark: never leave it pinned
            _place([None] * 4, (None, None, valkey_pid, None))
        client.delete(stream)
        connection.set_schema_to_public()
        teardown_databases(old, verbosity=0)

    print()
    print(
        f"history {args.history} messages; batch (entries per read) {batch}; paced runs "
        f"{args.seconds:g} s after {args.warmup:g} s of warm-up; "
        f"TENANT_LIMIT_SET_CALLS={settings.TENANT_LIMIT_SET_CALLS}"
        f"; load average {os.getloadavg()[0]:.2f}"
        + (f"; pinned (consumer, PostgreSQL, Valkey, gateway) to {args.pin}" if pin else "")
        + "; idle CPUs: "
        + ("poll, never halt" if args.idle_poll == "always" else idle_describe())
    )
    print("XADD → stored and committed (raw: read and acknowledged):")
    print(f"{'rate':>8} {'path':>5} {'p50 ms':>8} {'p99 ms':>8}")
    for rate_label, mode, p50, p99, reads, cpu, _steal in results:
        print(f"{rate_label:>8} {mode:>5} {p50:8.2f} {p99:8.2f}")
        if reads:
            print(f"{'':15}{reads}")
        print(f"{'':15}{cpu}")
    print()
    print(
        f"drain of {args.drain} events, median of {args.drain_rounds}: raw {drain['raw']:,.0f}/s "
        f"({min(drains['raw']):,.0f}-{max(drains['raw']):,.0f}), EVA {drain['EVA']:,.0f}/s "
        f"({min(drains['EVA']):,.0f}-{max(drains['EVA']):,.0f})"
    )
    print(f"consumer cost per event vs raw Redis: {drain['raw'] / drain['EVA']:.1f}x")
    print(
        f"per EVA event: {statements / counted:.2f} SQL statements ({statements} for {counted} "
        f"events); PostgreSQL round trip p50 {statistics.median(round_trips):.3f} ms; contract "
        f"validation p50 {statistics.median(validation) * 1000:.0f} µs"
    )
    for rate_label, mode, _p50, p99, _reads, _cpu, steal in results:
        if mode == "EVA":
            verdict = "meets" if p99 < 10 else "misses"
            host = "" if steal is None else f"; the hypervisor took {steal:.0%} of the CPU time"
            print(f"goal p99 < 10 ms at {rate_label}: {verdict} ({p99:.2f} ms{host})")
    ratio = drain["raw"] / drain["EVA"]
    print(f"goal consumer cost < 5x raw: {'meets' if ratio < 5 else 'misses'} ({ratio:.1f}x)")


if __name__ == "__main__":
    main()
