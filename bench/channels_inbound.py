"""Inbound WhatsApp path without the model: stream → consume_inbound machinery → PostgreSQL.

Measures, in one run and on the same Valkey and PostgreSQL:

* **raw**: XADD → XREADGROUP → XACK of the same entries, nothing else (the baseline);
* **EVA**: XADD → InboundConsumer (contract validation, tenant from the public index, idempotent
  storage through conversations in the tenant's schema, commit) → XACK.

For each, the latency from XADD to "read" (raw) or "stored and committed" (EVA) at a paced
100 and 1,000 events/s (p50/p99), and the drain throughput (events/s) of a pre-filled stream.
Replies are not scheduled (no hooks): this is the channel's own cost.

    .venv/bin/python bench/channels_inbound.py [--seconds 5] [--rates 100,1000] [--drain 2000]

Creates a throwaway database (``bench_eva_channels``, dropped at the end) on the server named by
DATABASE_URL (or the embedded one) and uses stream keys under a private prefix.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "eva.settings")
os.environ.setdefault("DEBUG", "1")
os.environ.setdefault("LOG_LEVEL", "warning")
os.environ.setdefault("DATABASE_CONN_MAX_AGE", "0")
os.environ["EVA_TEST_DATABASE_NAME"] = "bench_eva_channels"
os.environ["EVA_STREAM_PREFIX"] = f"bench{os.getpid()}"

SESSION = "bench-session-1"


def message_event(i: int) -> dict[str, Any]:
    chat = f"5215{i % 50:08d}@c.us"  # 50 customers writing in turn
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


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


class Run:
    """Feed a stream at ``rate`` events/s; record each event's latency (ms) when done."""

    def __init__(self, client: Any, stream: str) -> None:
        self.client = client
        self.stream = stream
        self.sent_at: dict[str, float] = {}
        self.latencies: list[float] = []

    def done(self, event_id: str) -> None:
        started = self.sent_at.pop(event_id, None)
        if started is not None:
            self.latencies.append((time.perf_counter() - started) * 1000)

    def produce(self, rate: float, seconds: float, start: int) -> int:
        interval = 1.0 / rate
        count = int(rate * seconds)
        begin = time.perf_counter()
        for n in range(count):
            target = begin + n * interval
            delay = target - time.perf_counter()
            if delay > 0:
                time.sleep(delay)
            event = message_event(start + n)
            self.sent_at[event["event_id"]] = time.perf_counter()
            self.client.xadd(self.stream, {"event": json.dumps(event)})
        return count


def raw_consume(client: Any, stream: str, group: str, on_entry: Callable[[str], None], stop: Any):
    while not stop.is_set():
        response = client.xreadgroup(group, "raw", {stream: ">"}, count=50, block=100)
        for _s, entries in response or []:
            for entry_id, fields in entries:
                on_entry(json.loads(fields["event"])["event_id"])
                client.xack(stream, group, entry_id)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=5.0, help="per paced measurement")
    parser.add_argument("--rates", default="100,1000", help="paced rates, events/s")
    parser.add_argument("--drain", type=int, default=2000, help="events in the drain test")
    parser.add_argument(
        "--limit-set-calls",
        action="store_true",
        help="django-tenants TENANT_LIMIT_SET_CALLS=True (SET search_path only on a schema change)",
    )
    args = parser.parse_args()

    import django

    django.setup()
    from django.conf import settings

    settings.TENANT_LIMIT_SET_CALLS = bool(args.limit_set_calls)
    from django.db import connection
    from django.test.utils import setup_databases, teardown_databases
    from django_tenants.utils import tenant_context

    from apps.accounts.services import tenant_onboard
    from apps.channels import contract, services
    from apps.channels.consumer import InboundConsumer
    from apps.channels.inbound import InboundEventHandler
    from apps.channels.publisher import redis_client
    from apps.tenants.models import WhatsAppSessionIndex

    print("Setting up a throwaway database…", flush=True)
    old = setup_databases(verbosity=0, interactive=False)
    client = redis_client()
    stream = contract.inbound_stream()
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

        results: list[tuple[str, str, float, float, float]] = []
        counter = 0
        for rate in [float(r) for r in args.rates.split(",")]:
            for mode in ("raw", "EVA"):
                client.delete(stream)
                group = f"bench-{mode}"
                client.xgroup_create(stream, group, id="0", mkstream=True)
                run = Run(client, stream)
                stop = threading.Event()
                if mode == "raw":
                    worker = threading.Thread(
                        target=raw_consume, args=(client, stream, group, run.done, stop)
                    )
                else:
                    handler = InboundEventHandler()

                    def handle(event: dict[str, Any], run: Run = run, h: Any = handler) -> None:
                        h(event)
                        run.done(event["event_id"])

                    consumer = InboundConsumer(
                        client=client,
                        handler=handle,
                        dead_letter=lambda dead: print("dead letter:", dead.error),
                        group=group,
                        consumer="eva",
                        block_ms=100,
                        trim_every_s=0,
                    )

                    def loop(consumer: InboundConsumer = consumer, stop: Any = stop) -> None:
                        while not stop.is_set():
                            consumer.step()
                        connection.close()

                    worker = threading.Thread(target=loop)
                worker.start()
                sent = run.produce(rate, args.seconds, counter)
                counter += sent
                deadline = time.monotonic() + 60
                while run.sent_at and time.monotonic() < deadline:
                    time.sleep(0.05)
                stop.set()
                worker.join()
                lost = len(run.sent_at)
                lat = run.latencies
                results.append(
                    (
                        f"{rate:.0f}/s",
                        mode,
                        statistics.median(lat),
                        percentile(lat, 99),
                        float(lost),
                    )
                )

        drain: dict[str, float] = {}
        for mode in ("raw", "EVA"):
            client.delete(stream)
            group = f"drain-{mode}"
            client.xgroup_create(stream, group, id="0", mkstream=True)
            pipe = client.pipeline(transaction=False)
            for n in range(args.drain):
                pipe.xadd(stream, {"event": json.dumps(message_event(counter + n))})
            pipe.execute()
            counter += args.drain
            begin = time.perf_counter()
            if mode == "raw":
                done = 0
                while done < args.drain:
                    response = client.xreadgroup(group, "raw", {stream: ">"}, count=50)
                    for _s, entries in response or []:
                        for entry_id, fields in entries:
                            json.loads(fields["event"])
                            client.xack(stream, group, entry_id)
                            done += 1
            else:
                from django.test.utils import CaptureQueriesContext

                consumer = InboundConsumer(
                    client=client,
                    handler=InboundEventHandler(),
                    dead_letter=lambda dead: print("dead letter:", dead.error),
                    group=group,
                    consumer="eva",
                    block_ms=100,
                    trim_every_s=0,
                )
                with CaptureQueriesContext(connection) as queries:
                    consumer.run(until_idle=True)
                queries_per_event = len(queries.captured_queries) / args.drain
                by_kind: dict[str, float] = {}
                for query in queries.captured_queries:
                    kind = " ".join(query["sql"].split()[:3])[:60]
                    by_kind[kind] = by_kind.get(kind, 0.0) + float(query["time"])
                slowest = sorted(by_kind.items(), key=lambda kv: -kv[1])[:5]
            drain[mode] = args.drain / (time.perf_counter() - begin)
        # What one PostgreSQL round trip costs on this machine right now (the floor under EVA).
        round_trips = []
        with connection.cursor() as cursor:
            for _ in range(200):
                begin = time.perf_counter()
                cursor.execute("SELECT 1")
                cursor.fetchone()
                round_trips.append((time.perf_counter() - begin) * 1000)
        validation = []
        for n in range(200):
            event = message_event(n)
            begin = time.perf_counter()
            contract.validate(event)
            validation.append((time.perf_counter() - begin) * 1000)
    finally:
        client.delete(stream)
        connection.set_schema_to_public()
        teardown_databases(old, verbosity=0)

    print()
    print(f"TENANT_LIMIT_SET_CALLS={bool(args.limit_set_calls)}")
    print(f"{'rate':>8} {'path':>5} {'p50 ms':>8} {'p99 ms':>8} {'unfinished':>10}")
    for rate_label, mode, p50, p99, lost in results:
        print(f"{rate_label:>8} {mode:>5} {p50:8.2f} {p99:8.2f} {lost:10.0f}")
    print()
    print(f"drain of {args.drain} events: raw {drain['raw']:,.0f}/s, EVA {drain['EVA']:,.0f}/s")
    print(f"consumer cost per event vs raw Redis: {drain['raw'] / drain['EVA']:.1f}x")
    print(
        f"per EVA event: {queries_per_event:.1f} SQL statements; PostgreSQL round trip "
        f"p50 {statistics.median(round_trips):.2f} ms; contract validation "
        f"p50 {statistics.median(validation):.2f} ms"
    )
    print("SQL time per event by statement (ms):")
    for kind, total in slowest:
        print(f"  {total / args.drain * 1000:7.2f}  {kind}")
    for rate_label, mode, _p50, p99, _lost in results:
        if mode == "EVA":
            verdict = "meets" if p99 < 10 else "misses"
            print(f"goal p99 < 10 ms at {rate_label}: {verdict} ({p99:.2f} ms)")


if __name__ == "__main__":
    main()
