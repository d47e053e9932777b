"""Run a parser in a child process with CPU, memory and wall-clock limits.

One hostile or merely pathological file (a PDF whose content streams take minutes to decode, a
workbook that inflates to gigabytes) must not stall or kill the embedding worker. The child is a
fresh interpreter (``python -m apps.knowledge.parsing.child``) that imports no Django code, gets
``RLIMIT_AS`` / ``RLIMIT_CPU`` set before it starts, and is killed when the wall-clock timeout
passes. It answers with one JSON object on stdout.
"""

from __future__ import annotations

import json
import os
import resource
import signal
import subprocess
import sys
from dataclasses import asdict
from pathlib import Path

from apps.knowledge.parsing import DocumentRejectedError, gettext_noop
from apps.knowledge.parsing.formats import ParseLimits, ParseResult

_PROJECT_ROOT = Path(__file__).resolve().parents[3]


def parse_in_sandbox(
    path: str, kind: str, limits: ParseLimits, *, timeout: float, memory_bytes: int
) -> ParseResult:
    """Parse ``path`` as ``kind`` in a limited child; raise ``DocumentRejectedError`` on failure."""
    cpu_seconds = max(1, int(timeout + 0.999))

    def limit_child() -> None:  # runs in the child between fork and exec
        resource.setrlimit(resource.RLIMIT_AS, (memory_bytes, memory_bytes))
        resource.setrlimit(resource.RLIMIT_CPU, (cpu_seconds, cpu_seconds + 1))
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
        # The parser needs no files of its own; a write attempt is a sign of mischief.
        resource.setrlimit(resource.RLIMIT_FSIZE, (1024 * 1024, 1024 * 1024))

    request = json.dumps({"path": path, "kind": kind, "limits": asdict(limits)})
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "PYTHONPATH": str(_PROJECT_ROOT),
        "PYTHONDONTWRITEBYTECODE": "1",
        "PYTHONHASHSEED": "0",
        # BLAS/OpenMP thread pools reserve address space per thread; one is enough here.
        "OMP_NUM_THREADS": "1",
        "OPENBLAS_NUM_THREADS": "1",
        "LANG": "C.UTF-8",
    }
    try:
        completed = subprocess.run(
            [sys.executable, "-s", "-m", "apps.knowledge.parsing.child"],
            input=request.encode(),
            capture_output=True,
            timeout=timeout,
            preexec_fn=limit_child,
            cwd=_PROJECT_ROOT,
            env=env,
            check=False,
        )
    except subprocess.TimeoutExpired as exc:
        raise DocumentRejectedError(
            "timeout",
            gettext_noop(
                "Reading the document took longer than %(seconds)s seconds and was stopped. "
                "The file may be damaged or unusually complex; try exporting it again."
            ),
            {"seconds": f"{timeout:g}"},
        ) from exc

    if completed.returncode < 0 and -completed.returncode in (signal.SIGXCPU, signal.SIGKILL):
        raise DocumentRejectedError(
            "timeout",
            gettext_noop(
                "Reading the document used more than %(seconds)s seconds of processing and was "
                "stopped. The file may be damaged or unusually complex."
            ),
            {"seconds": cpu_seconds},
        )
    try:
        answer = json.loads(completed.stdout.decode("utf-8") or "null")
    except (UnicodeDecodeError, json.JSONDecodeError):
        answer = None
    if not isinstance(answer, dict):
        stderr = completed.stderr.decode("utf-8", "replace")
        if "MemoryError" in stderr:
            raise _too_big(memory_bytes)
        raise DocumentRejectedError(
            "parser_crashed",
            gettext_noop(
                "The document could not be read (the reader stopped unexpectedly). "
                "The file may be damaged; try exporting it again."
            ),
        )
    if answer.get("ok"):
        return ParseResult(
            blocks=answer["blocks"], pages=int(answer["pages"]), rows=int(answer["rows"])
        )
    if answer.get("code") == "memory":
        raise _too_big(memory_bytes)
    params = answer.get("params")
    raise DocumentRejectedError(
        str(answer.get("code")),
        str(answer.get("template") or answer.get("message")),
        {str(key): str(value) for key, value in params.items()}
        if isinstance(params, dict)
        else None,
    )


def _too_big(memory_bytes: int) -> DocumentRejectedError:
    return DocumentRejectedError(
        "memory",
        gettext_noop(
            "Reading the document needed more than %(size)s MB of memory and was stopped. "
            "Split it into smaller files."
        ),
        {"size": memory_bytes // (1024 * 1024)},
    )
