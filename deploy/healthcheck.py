#!/usr/bin/env python3
"""Container healthchecks for the EVA images, standard library only (no curl in the image).

Usage:
  healthcheck.py http URL                   -> 0 when URL answers 2xx within the timeout
  healthcheck.py process SUBSTRING          -> 0 when a process whose command line contains
                                               SUBSTRING is running (beat, the inbound consumer)
  healthcheck.py file-fresh PATH SECONDS    -> 0 when PATH was modified in the last SECONDS

Celery workers use `celery inspect ping` instead (see docker-compose.prod.yml), which proves the
worker answers on the broker, not only that its process exists.
"""

from __future__ import annotations

import sys
import time
import urllib.error
import urllib.request
from pathlib import Path


def check_http(url: str, timeout: float = 4.0) -> bool:
    if not url.startswith(("http://", "https://")):
        raise SystemExit(f"refusing non-HTTP URL: {url!r}")
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:  # noqa: S310 (scheme checked above)
            return 200 <= response.status < 300
    except (urllib.error.URLError, OSError):
        return False


def check_process(substring: str, proc_root: Path = Path("/proc")) -> bool:
    for cmdline in proc_root.glob("[0-9]*/cmdline"):
        try:
            argv = cmdline.read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue  # the process ended while we looked
        if substring in argv and "healthcheck.py" not in argv:
            return True
    return False


def check_file_fresh(path: str, max_age_seconds: float) -> bool:
    try:
        return time.time() - Path(path).stat().st_mtime <= max_age_seconds
    except OSError:
        return False


def main(argv: list[str]) -> int:
    if len(argv) >= 2 and argv[0] == "http":
        return 0 if check_http(argv[1]) else 1
    if len(argv) >= 2 and argv[0] == "process":
        return 0 if check_process(argv[1]) else 1
    if len(argv) >= 3 and argv[0] == "file-fresh":
        return 0 if check_file_fresh(argv[1], float(argv[2])) else 1
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
