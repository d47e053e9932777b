"""The sandboxed parser process: one JSON request on stdin, one JSON answer on stdout.

Started by ``sandbox.parse_in_sandbox`` under resource limits. Never imports Django.
"""

from __future__ import annotations

import json
import sys
from dataclasses import asdict


def main() -> int:
    from apps.knowledge.parsing import DocumentRejectedError, gettext_noop
    from apps.knowledge.parsing.formats import ParseLimits, parse_file
    from apps.knowledge.parsing.guards import ArchiveLimits

    request = json.loads(sys.stdin.buffer.read())
    raw_limits = dict(request["limits"])
    limits = ParseLimits(**{**raw_limits, "archive": ArchiveLimits(**raw_limits["archive"])})
    try:
        result = parse_file(request["path"], request["kind"], limits)
        answer = {"ok": True, **asdict(result)}
    except DocumentRejectedError as exc:
        answer = {"ok": False, "code": exc.code, "template": exc.template, "params": exc.params}
    except MemoryError:
        answer = {"ok": False, "code": "memory", "message": "out of memory"}
    except RecursionError:
        answer = {
            "ok": False,
            "code": "corrupt",
            "template": gettext_noop("The document is nested too deeply to read."),
        }
    except Exception as exc:
        # A parser bug or an exotic broken file: the admin gets a plain message, the operator
        # the exception type on stderr.
        sys.stderr.write(f"{type(exc).__name__}: {exc}\n")
        answer = {
            "ok": False,
            "code": "unreadable",
            "template": gettext_noop(
                "The document could not be read; it may be damaged. Try exporting it again."
            ),
        }
    sys.stdout.write(json.dumps(answer, ensure_ascii=False))
    return 0


if __name__ == "__main__":
    sys.exit(main())
