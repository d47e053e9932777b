"""`make run`: EVA on one machine with the embedded default.

Starts (when DATABASE_URL / REDIS_URL are unset) the embedded PostgreSQL + pgvector and Valkey,
migrates every schema, seeds the demo tenant, then runs the web server, a real Celery worker and
the WhatsApp inbound consumer until Ctrl-C, when it stops all of them.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PY = sys.executable


def read_dotenv(path: Path) -> dict[str, str]:
    """KEY=value lines of a local .env; blank values and comments are ignored."""
    values: dict[str, str] = {}
    if path.exists():
        for line in path.read_text().splitlines():
            key, sep, value = line.partition("=")
            key, value = key.strip(), value.strip().strip("'\"")
            if sep and key and not key.startswith("#") and value:
                values[key] = value
    return values


def wait_ready(
    port: int,
    processes: Iterable[subprocess.Popen[bytes]],
    given_up: Callable[[], bool],
    timeout: float = 120.0,
) -> tuple[bool, str]:
    """Wait until ``GET /readyz`` answers 200 (database, migrations, Redis, media storage and a
    worker), so that "EVA is running" is printed when a browser gets a page and the agent can
    answer; stop waiting at once when one of ``processes`` exits (the caller reports it).
    Returns (whether the web server answers at all, what is still not ready: "" when everything
    is)."""
    processes = list(processes)
    deadline = time.monotonic() + timeout
    answering, why = False, f"the web server did not answer on port {port}"
    while (
        time.monotonic() < deadline
        and all(process.poll() is None for process in processes)
        and not given_up()
    ):
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=5):
                return True, ""
        except urllib.error.HTTPError as exc:  # 503: a check fails (e.g. no worker answers yet)
            answering = True
            try:
                checks = json.loads(exc.read() or b"{}").get("checks", {})
            except ValueError:
                checks = {}
            failing = [
                f"{name}: {check.get('detail')}"
                for name, check in checks.items()
                if not check.get("ok")
            ]
            why = "; ".join(failing) or f"/readyz answered {exc.code}"
        except OSError:
            pass  # not listening yet
        time.sleep(0.5)
    return answering, why


def stop_with_parent() -> None:
    """Stop when `make` stops. A signal sent to make alone (a process manager, `timeout`; not
    Ctrl-C, which reaches the whole terminal group) ends make without passing it on, and this
    process with every service it started would keep running: ask Linux to send SIGTERM here
    when the parent goes."""
    if not sys.platform.startswith("linux"):
        return
    import ctypes

    parent = os.getppid()
    ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # 1 = PR_SET_PDEATHSIG
    if os.getppid() != parent:  # the parent went before the request took effect
        os.kill(os.getpid(), signal.SIGTERM)


def main() -> int:
    stop_with_parent()
    os.chdir(ROOT)
    # Values already in the environment win over the .env file.
    env = read_dotenv(ROOT / ".env") | os.environ.copy()
    env.setdefault("DEBUG", "1")
    env.setdefault("LOG_FORMAT", "console")
    env.setdefault("DJANGO_SETTINGS_MODULE", "eva.settings")
    port = env.get("EVA_PORT", "8000")
    sys.path.insert(0, str(ROOT))
    from eva import embedded

    started_embedded = []
    if not env.get("DATABASE_URL"):
        print("Starting embedded PostgreSQL (+ pgvector)…", flush=True)
        env["DATABASE_URL"] = embedded.database_url()
        started_embedded.append("postgres")
    if not env.get("REDIS_URL"):
        print("Starting embedded Valkey…", flush=True)
        env["REDIS_URL"] = embedded.redis_url()
        started_embedded.append("valkey")

    def manage(*args: str) -> None:
        subprocess.run([PY, "manage.py", *args], env=env, check=True)

    try:
        print("Migrating all schemas…", flush=True)
        manage("migrate_schemas", "--verbosity", "0")
        manage("collectstatic", "--noinput", "--verbosity", "0")
        manage("seed_demo", "--port", port)
        # Join the bundled Whisper model now rather than on the first voice note.
        manage("whisper_prepare")
    except subprocess.CalledProcessError as exc:
        print(f"Set-up failed ({exc}); see the output above.", file=sys.stderr)
        return 1

    def worker(queues: str, name: str, concurrency: int) -> subprocess.Popen[bytes]:
        return subprocess.Popen(
            [
                PY,
                "-m",
                "celery",
                "-A",
                "eva",
                "worker",
                "-Q",
                queues,
                "-n",
                f"{name}@%h",
                "--concurrency",
                str(concurrency),
                "--loglevel",
                "INFO",
            ],
            env=env,
        )

    processes = {
        "web": subprocess.Popen(
            [PY, "manage.py", "runserver", f"127.0.0.1:{port}", "--noreload"], env=env
        ),
        "worker": worker("agent,embedding,dlq,webhooks", "eva", 2),
        # Voice notes get their own process (one Whisper model in memory) so two of them
        # never hold up agent replies.
        "worker-transcription": worker("transcription", "transcription", 1),
        # Periodic tasks, e.g. the dlq-monitor (docs/dead-letters.md). Exactly one beat.
        "beat": subprocess.Popen(
            [
                PY,
                *("-m", "celery", "-A", "eva", "beat", "--loglevel", "INFO"),
                "--schedule",
                str(Path(env.get("EVA_EMBEDDED_DIR") or ROOT / ".eva") / "celerybeat-schedule"),
            ],
            env=env,
        ),
        # WhatsApp events from gateway-node (started separately: docs/whatsapp.md).
        "consumer": subprocess.Popen([PY, "manage.py", "consume_inbound"], env=env),
    }
    stopping = False
    exit_code = 0

    def stop(signum: int, frame: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)
    answering, not_ready = wait_ready(int(port), processes.values(), lambda: stopping)
    if stopping or any(process.poll() is not None for process in processes.values()):
        pass  # Ctrl-C while waiting, or a process exited (the loop below says which)
    elif answering:
        print(f"\nEVA is running: http://demo.localhost:{port}/  (Ctrl-C to stop)\n", flush=True)
        if not_ready:
            print(f"Not ready yet (/readyz): {not_ready}\n", file=sys.stderr, flush=True)
    else:
        print(f"{not_ready} (see the output above); stopping.", file=sys.stderr)
        exit_code, stopping = 1, True
    while not stopping:
        for name, process in processes.items():
            if process.poll() is not None:
                print(f"{name} exited with code {process.returncode}; stopping.", file=sys.stderr)
                exit_code, stopping = 1, True
        time.sleep(0.5)

    print("\nStopping…", flush=True)
    for process in processes.values():
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
    for name, process in processes.items():
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            print(f"{name} did not stop in 20 s; killing it.", file=sys.stderr)
            process.kill()
    if "postgres" in started_embedded:
        embedded.stop_postgres()
    if "valkey" in started_embedded:
        embedded.stop_valkey()
    print("Stopped.", flush=True)
    return exit_code


if __name__ == "__main__":
    sys.exit(main())
