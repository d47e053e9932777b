"""Local HTTP servers speaking the real OpenAI and Gemini wire formats.

The real SDKs are pointed at them (``base_url`` / ``http_options``), so the provider code under
test is exactly what runs in production. Each server records the requests it received and plays
a script of behaviours (a status code, a delay, a given body) before falling back to a normal
answer.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest


@dataclass
class Seen:
    path: str
    headers: dict[str, str]
    body: dict[str, Any]


@dataclass
class Stub:
    """Script entries: {"status": 500}, {"sleep": 1.0}, {"text": "..."} (one request each)."""

    dialect: str
    port: int = 0
    script: list[dict[str, Any]] = field(default_factory=list)
    seen: list[Seen] = field(default_factory=list)
    reply_text: str = "Hola, te ayudo con gusto."
    lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def base_url(self) -> str:
        suffix = "/v1" if self.dialect == "openai" else ""
        return f"http://127.0.0.1:{self.port}{suffix}"

    def next_action(self) -> dict[str, Any]:
        with self.lock:
            return self.script.pop(0) if self.script else {}


def _openai_body(path: str, body: dict[str, Any], text: str) -> dict[str, Any]:
    if path.endswith("/embeddings"):
        inputs = body["input"] if isinstance(body["input"], list) else [body["input"]]
        dims = body.get("dimensions", 3072)
        return {
            "object": "list",
            "model": body["model"],
            "data": [
                {"object": "embedding", "index": i, "embedding": [float(i + 1)] * dims}
                for i in range(len(inputs))
            ],
            "usage": {"prompt_tokens": 5 * len(inputs), "total_tokens": 5 * len(inputs)},
        }
    return {
        "id": "chatcmpl-stub",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": body["model"],
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": text},
                "finish_reason": "stop",
            }
        ],
        "usage": {"prompt_tokens": 120, "completion_tokens": 30, "total_tokens": 150},
    }


def _gemini_body(path: str, body: dict[str, Any], text: str) -> dict[str, Any]:
    if path.endswith(":batchEmbedContents") or path.endswith(":embedContent"):
        requests = body.get("requests") or [body]
        return {
            "embeddings": [
                {"values": [float(i + 1)] * int(r.get("outputDimensionality") or 3072)}
                for i, r in enumerate(requests)
            ]
        }
    return {
        "candidates": [
            {
                "content": {"role": "model", "parts": [{"text": text}]},
                "finishReason": "STOP",
                "index": 0,
            }
        ],
        "usageMetadata": {
            "promptTokenCount": 100,
            "candidatesTokenCount": 20,
            "totalTokenCount": 120,
        },
        "modelVersion": "stub",
    }


def _model_listing(stub: Stub, path: str) -> dict[str, Any]:
    if stub.dialect == "openai":  # GET /v1/models
        return {
            "object": "list",
            "data": [{"id": "gpt-4o-mini", "object": "model", "created": 0, "owned_by": "stub"}],
        }
    name = path.split("?")[0].rsplit("/", 1)[-1]  # GET /v1beta/models/{model}
    return {"name": f"models/{name}", "displayName": name, "inputTokenLimit": 1048576}


def _serve(stub: Stub) -> ThreadingHTTPServer:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            stub.seen.append(Seen(self.path, {k.lower(): v for k, v in self.headers.items()}, {}))
            action = stub.next_action()
            status = action.get("status", 200)
            payload = _model_listing(stub, self.path) if status == 200 else {"error": {}}
            encoded = json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(encoded)))
            self.end_headers()
            self.wfile.write(encoded)

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length) if length else b"{}"
            body = json.loads(raw or b"{}")
            stub.seen.append(Seen(self.path, {k.lower(): v for k, v in self.headers.items()}, body))
            action = stub.next_action()
            if "sleep" in action:
                time.sleep(action["sleep"])
            status = action.get("status", 200)
            if status != 200:
                payload: dict[str, Any] = {
                    "error": {"code": status, "message": "stub failure", "status": "UNAVAILABLE"}
                }
            else:
                text = action.get("text", stub.reply_text)
                builder = _openai_body if stub.dialect == "openai" else _gemini_body
                payload = builder(self.path, body, text)
            encoded = json.dumps(payload).encode()
            try:
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(encoded)))
                self.end_headers()
                self.wfile.write(encoded)
            except (BrokenPipeError, ConnectionResetError):
                pass  # the client gave up (timeout test)

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    stub.port = server.server_address[1]
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


@pytest.fixture
def openai_stub() -> Iterator[Stub]:
    stub = Stub("openai")
    server = _serve(stub)
    yield stub
    server.shutdown()
    server.server_close()


@pytest.fixture
def gemini_stub() -> Iterator[Stub]:
    stub = Stub("gemini")
    server = _serve(stub)
    yield stub
    server.shutdown()
    server.server_close()


@pytest.fixture
def vendors(settings, openai_stub: Stub, gemini_stub: Stub) -> Iterator[tuple[Stub, Stub]]:
    """Platform keys for both vendors, pointed at the stubs; fast retries; closed breakers."""
    from apps.ai import breaker

    settings.OPENAI_API_KEY = "sk-platform-openai-key"
    settings.OPENAI_BASE_URL = openai_stub.base_url
    settings.GOOGLE_API_KEY = "platform-google-key"
    settings.GEMINI_BASE_URL = gemini_stub.base_url
    settings.AI_CHAT_ROUTE = "openai,gemini"
    settings.AI_RETRY_BASE_SECONDS = 0.01
    settings.AI_MAX_RETRIES = 2
    settings.AI_TIMEOUT_SECONDS = 5.0
    settings.AI_BREAKER_THRESHOLD = 2
    client = breaker._redis()

    def close_all() -> None:
        breaker._seen.clear()  # the per-process memory of circuit states
        for key in client.scan_iter("eva:ai:breaker:*"):
            client.delete(key)

    close_all()
    yield openai_stub, gemini_stub
    close_all()
