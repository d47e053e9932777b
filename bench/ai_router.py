"""Router overhead per chat call, against a local server speaking the OpenAI wire format.

Both sides use the real ``openai`` SDK against the same stub in the same run:
- baseline: ``client.chat.completions.create(...)`` called directly (one reused client);
- EVA: ``apps.ai.chat.chat_complete(ChatRequest(...))`` with route "openai", which adds route
  resolution, the circuit-breaker check and reset in Redis, prompt assembly and result mapping.

Calls alternate between the two so machine load hits both alike. Target: under 2 ms added per
call (median). Runs in the public schema, so no usage row is written; ``--metered SCHEMA`` runs
the EVA side inside a tenant schema instead (key lookup, budget check and one INSERT added).

    DEBUG=1 .venv/bin/python bench/ai_router.py [--calls 300] [--metered demo]

Needs Redis (the embedded one: ``eval "$(.venv/bin/python -m eva.embedded env)"``).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "eva.settings")
os.environ.setdefault("DEBUG", "1")

BODY = json.dumps(
    {
        "id": "chatcmpl-bench",
        "object": "chat.completion",
        "created": 0,
        "model": "gpt-4o-mini",
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": "El envío tarda 2 días."},
                "finish_reason": "stop",
            }
        ],
        "usage": {"prompt_tokens": 120, "completion_tokens": 9, "total_tokens": 129},
    }
).encode()


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, like the real API
    # Headers and body in one segment with no Nagle delay: otherwise a 40 ms delayed-ACK stall
    # lands on random calls and swamps the milliseconds being measured.
    disable_nagle_algorithm = True
    wbufsize = 1 << 16

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(BODY)))
        self.end_headers()
        self.wfile.write(BODY)

    def log_message(self, *args: object) -> None:
        pass


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--calls", type=int, default=300, help="calls per side (bounded)")
    parser.add_argument("--metered", metavar="SCHEMA", help="run EVA's side in this tenant schema")
    args = parser.parse_args()
    calls = max(10, min(args.calls, 5000))

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    base_url = f"http://127.0.0.1:{server.server_address[1]}/v1"
    os.environ.update(
        OPENAI_API_KEY="sk-bench-not-a-real-key", OPENAI_BASE_URL=base_url, AI_CHAT_ROUTE="openai"
    )

    import logging

    import django

    django.setup()
    logging.disable(logging.INFO)  # per-request httpx lines would dominate the timings
    import openai
    from django_tenants.utils import schema_context

    from apps.ai.chat import ChatMessage, ChatRequest, ContextPassage, chat_complete

    system = (
        "You are Alpha Store's sales assistant.\n\nContext passages:\n[c1] El envío tarda 2 días."
    )
    direct_client = openai.OpenAI(
        api_key="sk-bench-not-a-real-key", base_url=base_url, timeout=20.0, max_retries=0
    )
    request = ChatRequest(
        system="You are Alpha Store's sales assistant.",
        messages=[ChatMessage(role="user", text="¿Cuánto tarda el envío?")],
        context=[ContextPassage(ref="c1", text="El envío tarda 2 días.")],
    )

    def direct() -> None:
        completion = direct_client.chat.completions.create(
            model="gpt-4o-mini",
            messages=[
                {"role": "system", "content": system},
                {"role": "user", "content": "¿Cuánto tarda el envío?"},
            ],
            max_completion_tokens=512,
        )
        assert completion.choices[0].message.content

    def routed() -> None:
        result = chat_complete(request)
        assert result.provider == "openai", result

    with schema_context(args.metered or "public"):
        for _ in range(20):  # warm both clients and connections
            direct()
            routed()
        direct_times: list[float] = []
        routed_times: list[float] = []
        for _ in range(calls):
            for fn, times in ((direct, direct_times), (routed, routed_times)):
                start = time.perf_counter()
                fn()
                times.append(time.perf_counter() - start)
    server.shutdown()

    d_med = statistics.median(direct_times) * 1000
    r_med = statistics.median(routed_times) * 1000
    d_p90 = statistics.quantiles(direct_times, n=10)[-1] * 1000
    r_p90 = statistics.quantiles(routed_times, n=10)[-1] * 1000
    added = r_med - d_med
    print(f"calls per side: {calls} (schema: {args.metered or 'public, unmetered'})")
    print(f"direct SDK call : median {d_med:6.2f} ms   p90 {d_p90:6.2f} ms")
    print(f"EVA chat_complete: median {r_med:6.2f} ms   p90 {r_p90:6.2f} ms")
    verdict = "within" if added < 2.0 else "OVER"
    print(f"router overhead : {added:+.2f} ms per call (median) — {verdict} the 2 ms target")
    print(f"load average: {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores")


if __name__ == "__main__":
    main()
