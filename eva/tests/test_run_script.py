"""`make run` (scripts/run.py) says "EVA is running" only once /readyz answers 200; a check still
failing is named, a web server that never answers is reported, a process that exits ends the
wait."""

from __future__ import annotations

import importlib.util
import json
import socket
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent.parent


def _run_module():
    spec = importlib.util.spec_from_file_location("eva_run_script", ROOT / "scripts" / "run.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def readyz():
    """A local server answering /readyz as EVA's does: 503 with the failing checks until
    ``state["ready"]`` is set, then 200."""
    state = {"ready": False, "calls": 0}

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            state["calls"] += 1
            ok = state["ready"]
            checks = {
                "database": {"ok": True, "detail": "reachable"},
                "worker": {"ok": ok, "detail": "1 worker(s) answering" if ok else "no worker"},
            }
            body = json.dumps({"status": "ok" if ok else "fail", "checks": checks}).encode()
            self.send_response(200 if ok else 503)
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server.server_address[1], state
    server.shutdown()


@pytest.fixture
def web_process():
    process = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    yield process
    process.kill()
    process.wait()


def test_it_waits_until_every_check_passes(readyz, web_process):
    port, state = readyz
    threading.Timer(0.8, lambda: state.update(ready=True)).start()
    answering, not_ready = _run_module().wait_ready(port, [web_process], lambda: False, timeout=10)
    assert (answering, not_ready) == (True, "")
    assert state["calls"] >= 2  # asked while not ready, then once ready


def test_a_check_still_failing_is_named(readyz, web_process):
    port, _state = readyz
    answering, not_ready = _run_module().wait_ready(port, [web_process], lambda: False, timeout=1.2)
    assert answering and not_ready == "worker: no worker"


def test_a_web_server_that_never_answers_is_reported(web_process):
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        free = probe.getsockname()[1]
    answering, why = _run_module().wait_ready(free, [web_process], lambda: False, timeout=1.0)
    assert not answering and why == f"the web server did not answer on port {free}"


def test_a_web_server_that_exited_is_not_asked(readyz, web_process):
    port, state = readyz
    state["ready"] = True  # something else answers on the port
    web_process.kill()
    web_process.wait()
    answering, _why = _run_module().wait_ready(port, [web_process], lambda: False, timeout=5)
    assert not answering and state["calls"] == 0


def test_any_process_that_exits_ends_the_wait(readyz, web_process):
    """A worker or the consumer that dies while the web server waits for it: no two-minute wait
    before the run loop says which one exited."""
    port, state = readyz
    worker = subprocess.Popen([sys.executable, "-c", "raise SystemExit(3)"])
    worker.wait()
    answering, _why = _run_module().wait_ready(port, [web_process, worker], lambda: False)
    assert not answering and state["calls"] == 0


def test_ctrl_c_while_waiting_stops_the_wait(readyz, web_process):
    port, state = readyz
    answering, _why = _run_module().wait_ready(port, [web_process], lambda: True, timeout=5)
    assert not answering and state["calls"] == 0
