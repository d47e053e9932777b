"""manage.py dlq — operators' view of the dead-letter queue (see docs/dead-letters.md)."""

from __future__ import annotations

import json
import sys
import time
from argparse import ArgumentParser, RawDescriptionHelpFormatter
from datetime import timedelta
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.utils import timezone

from apps.ops.models import DeadLetter
from apps.ops.selectors import (
    dead_letter_counts,
    dead_letter_get,
    dead_letter_list,
    parse_age,
    parse_since,
    public_schema,
)
from apps.ops.services import (
    DeadLetterError,
    dead_letter_discard,
    dead_letter_purge,
    dead_letter_replay,
    dead_letter_resolve,
)

STATUSES = DeadLetter.Status.values
SOURCES = DeadLetter.Source.values
CLOSED = [DeadLetter.Status.REPLAYED, DeadLetter.Status.RESOLVED, DeadLetter.Status.DISCARDED]

EPILOG = """\
Dead letters are tasks (or stream entries) that failed for good: their retries ran out, the error
was permanent, they hit a time limit, or their worker died on them repeatedly. Each keeps the task
name, arguments, tenant schema, error, traceback and attempts. Status: new (needs an operator),
replayed (a replay succeeded), resolved (handled by other means), discarded (dropped on purpose).

examples:
  manage.py dlq list --status new --tenant acme --since 24h
  manage.py dlq show 42
  manage.py dlq replay 42 43 --wait 60          # re-run in the tenant schema they failed in
  manage.py dlq replay --task 'workers.embedding.*' --status new --yes
  manage.py dlq discard 44 --note "customer deleted the document"
  manage.py dlq purge --older-than 30d --yes    # closed ones only, unless --status new is given
"""


def _positive_ids(values: list[str]) -> list[int]:
    ids = []
    for value in values:
        if not value.isdigit() or int(value) <= 0:
            raise CommandError(f"{value!r} is not a dead-letter id (a positive whole number)")
        ids.append(int(value))
    return ids


def _serialize(dead_letter: DeadLetter, *, full: bool) -> dict[str, Any]:
    item: dict[str, Any] = {
        "id": dead_letter.pk,
        "status": dead_letter.status,
        "source": dead_letter.source,
        "task": dead_letter.name,
        "tenant": dead_letter.tenant_schema or "public",
        "exception_type": dead_letter.exception_type,
        "error": dead_letter.error,
        "attempts": dead_letter.attempts,
        "first_failed_at": dead_letter.first_failed_at.isoformat(),
        "last_failed_at": dead_letter.last_failed_at.isoformat(),
        "replays": dead_letter.replays,
    }
    if full:
        item.update(
            {
                "task_id": dead_letter.task_id,
                "payload": dead_letter.payload,
                "traceback": dead_letter.traceback,
                "worker_host": dead_letter.worker_host,
                "replay_task_id": dead_letter.replay_task_id,
                "last_replayed_at": dead_letter.last_replayed_at.isoformat()
                if dead_letter.last_replayed_at
                else None,
                "status_changed_at": dead_letter.status_changed_at.isoformat()
                if dead_letter.status_changed_at
                else None,
                "note": dead_letter.note,
                "created_at": dead_letter.created_at.isoformat(),
            }
        )
    return item


class Command(BaseCommand):
    help = (
        "Inspect and act on the dead-letter queue: list, show, replay, discard, resolve, purge "
        "dead letters; stats; run the monitor once. `manage.py dlq <action> --help` explains "
        "each action."
    )

    def create_parser(self, prog_name: str, subcommand: str, **kwargs: Any) -> CommandParser:
        parser = super().create_parser(prog_name, subcommand, **kwargs)
        parser.formatter_class = RawDescriptionHelpFormatter
        parser.epilog = EPILOG
        return parser

    def add_arguments(self, parser: CommandParser) -> None:
        actions = parser.add_subparsers(
            dest="action",
            metavar="ACTION",
            required=True,
        )

        def add(name: str, help_text: str) -> ArgumentParser:
            return actions.add_parser(
                name,
                help=help_text,
                description=help_text,
            )

        def filters(sub: ArgumentParser, *, status_default: str | None = None) -> None:
            sub.add_argument(
                "--tenant",
                help="tenant schema name (slug), or 'public' for dead letters without a tenant",
            )
            sub.add_argument(
                "--task",
                help="task name, e.g. workers.embedding.embed_document; end with * for a prefix",
            )
            sub.add_argument(
                "--status",
                choices=STATUSES,
                default=status_default,
                help="only dead letters in this status"
                + (f" (default: {status_default})" if status_default else ""),
            )
            sub.add_argument("--source", choices=SOURCES, help="task, stream or other")
            sub.add_argument(
                "--since",
                help="last failure at or after: an age (30m, 6h, 7d) or an ISO date/time (UTC)",
            )

        sub = add("list", "List dead letters, newest failure first, as a table or JSON.")
        filters(sub)
        sub.add_argument(
            "--limit", type=int, default=50, help="at most this many rows (default 50; 0 = all)"
        )
        sub.add_argument("--json", action="store_true", help="print a JSON array")

        sub = add(
            "show", "Show everything about one dead letter: arguments, tenant, traceback, replays."
        )
        sub.add_argument("id", help="dead-letter id (from `dlq list`)")
        sub.add_argument("--json", action="store_true", help="print one JSON object")

        sub = add(
            "replay",
            "Send dead letters' work again, in the tenant schema it failed in. Only `new` ones "
            "are sent, never one whose earlier replay is still running, so repeating the "
            "command does not run the work twice. A replay that succeeds marks the dead letter "
            "`replayed`; one that fails updates it with the new error. Give ids, or filters "
            "(which replay every matching `new` dead letter after confirmation).",
        )
        sub.add_argument("ids", nargs="*", metavar="ID", help="dead-letter ids")
        filters(sub)
        sub.add_argument(
            "--force",
            action="store_true",
            help="also replay `replayed` dead letters and ones with a replay in flight",
        )
        sub.add_argument(
            "--wait",
            type=float,
            default=0,
            metavar="SECONDS",
            help="wait up to this long for each replay's outcome; exit 1 if one is not replayed",
        )
        sub.add_argument("--yes", action="store_true", help="do not ask before replaying by filter")

        for name, verb in (
            ("discard", "Discard dead letters: kept for the record, never replayed."),
            (
                "resolve",
                "Mark dead letters resolved: the failure was handled some other way.",
            ),
        ):
            sub = add(name, verb)
            sub.add_argument("ids", nargs="+", metavar="ID", help="dead-letter ids")
            sub.add_argument("--note", default="", help="why (kept on the record)")

        sub = add(
            "purge",
            "Delete dead letters whose last failure is older than --older-than. By default only "
            "closed ones (replayed, resolved, discarded); `new` ones only with --status new. "
            "Asks for confirmation unless --yes.",
        )
        sub.add_argument(
            "--older-than",
            required=True,
            metavar="AGE",
            help="an age: 90m, 12h, 30d, 2w",
        )
        sub.add_argument(
            "--status",
            action="append",
            choices=STATUSES,
            help="purge only this status (repeatable; default: replayed, resolved, discarded)",
        )
        sub.add_argument("--dry-run", action="store_true", help="only count what would go")
        sub.add_argument("--yes", action="store_true", help="do not ask for confirmation")

        sub = add(
            "stats",
            "Counts: dead letters by status, new ones by task and tenant, last hour, the "
            "monitor's counters and queue depths.",
        )
        sub.add_argument("--json", action="store_true", help="print one JSON object")

        sub = add(
            "monitor",
            "Run the dlq-monitor once here (beat normally runs it on the dlq queue): log each "
            "new dead letter as one JSON line, update counters, notify the webhook.",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        action = options["action"]
        with public_schema():
            getattr(self, f"_{action}")(options)

    # --- helpers ---------------------------------------------------------------------------

    def _filtered(self, options: dict[str, Any]) -> Any:
        since = None
        if options.get("since"):
            try:
                since = parse_since(options["since"])
            except ValueError as exc:
                raise CommandError(f"--since: {exc}") from exc
        return dead_letter_list(
            tenant=options.get("tenant"),
            task=options.get("task"),
            status=options.get("status"),
            source=options.get("source"),
            since=since,
        )

    def _get(self, raw_id: str) -> DeadLetter:
        (dead_letter_id,) = _positive_ids([raw_id])
        dead_letter = dead_letter_get(dead_letter_id=dead_letter_id)
        if dead_letter is None:
            raise CommandError(f"dead letter {dead_letter_id} does not exist")
        return dead_letter

    def _confirm(self, question: str, options: dict[str, Any]) -> None:
        if options.get("yes"):
            return
        if not sys.stdin.isatty():
            raise CommandError(f"{question} Refusing without confirmation: add --yes.")
        answer = input(f"{question} [y/N] ").strip().lower()
        if answer not in ("y", "yes"):
            raise CommandError("cancelled; nothing changed")

    # --- actions ---------------------------------------------------------------------------

    def _list(self, options: dict[str, Any]) -> None:
        if options["limit"] < 0:
            raise CommandError("--limit must be 0 (all) or more")
        queryset = self._filtered(options)
        rows = list(queryset[: options["limit"]] if options["limit"] else queryset)
        if options["json"]:
            self.stdout.write(json.dumps([_serialize(d, full=False) for d in rows], indent=2))
            return
        if not rows:
            self.stdout.write("No dead letters match.")
            return
        header = ("ID", "STATUS", "TENANT", "TASK", "TRIES", "LAST FAILURE (UTC)", "ERROR")
        table = [
            (
                str(d.pk),
                d.status,
                d.tenant_schema or "public",
                d.name,
                str(d.attempts),
                d.last_failed_at.strftime("%Y-%m-%d %H:%M:%S"),
                f"{d.exception_type.rsplit('.', 1)[-1]}: {d.error}".replace("\n", " ")[:70],
            )
            for d in rows
        ]
        widths = [max(len(row[i]) for row in [header, *table]) for i in range(len(header) - 1)]
        for row in [header, *table]:
            cells = [cell.ljust(width) for cell, width in zip(row[:-1], widths, strict=True)]
            self.stdout.write("  ".join([*cells, row[-1]]).rstrip())
        total = queryset.count()
        if total > len(rows):
            self.stdout.write(f"({len(rows)} of {total} shown; use --limit 0 for all)")

    def _show(self, options: dict[str, Any]) -> None:
        item = _serialize(self._get(options["id"]), full=True)
        if options["json"]:
            self.stdout.write(json.dumps(item, indent=2))
            return
        for key in (
            "id",
            "status",
            "source",
            "task",
            "task_id",
            "tenant",
            "attempts",
            "first_failed_at",
            "last_failed_at",
            "worker_host",
            "exception_type",
            "error",
            "replays",
            "replay_task_id",
            "last_replayed_at",
            "status_changed_at",
            "note",
        ):
            self.stdout.write(f"{key + ':':<19}{item[key] if item[key] not in (None, '') else '-'}")
        self.stdout.write("payload:")
        self.stdout.write(json.dumps(item["payload"], indent=2))
        self.stdout.write("traceback:")
        self.stdout.write(item["traceback"] or "-")

    def _replay(self, options: dict[str, Any]) -> None:
        has_filter = any(options.get(k) for k in ("tenant", "task", "status", "source", "since"))
        if options["ids"] and has_filter:
            raise CommandError("give dead-letter ids or filters, not both")
        if options["wait"] < 0:
            raise CommandError("--wait must be 0 or more seconds")
        if options["ids"]:
            ids = _positive_ids(options["ids"])
            missing = [i for i in ids if dead_letter_get(dead_letter_id=i) is None]
            if missing:
                raise CommandError(
                    "dead letter(s) do not exist: " + ", ".join(str(i) for i in missing)
                )
        elif has_filter:
            if not options.get("status"):
                options["status"] = DeadLetter.Status.NEW
            ids = list(self._filtered(options).values_list("pk", flat=True))
            if not ids:
                self.stdout.write("No dead letters match; nothing replayed.")
                return
            self._confirm(f"Replay {len(ids)} dead letter(s)?", options)
        else:
            raise CommandError("give dead-letter ids, or filters such as --task or --tenant")
        outcomes = []
        for dead_letter_id in ids:
            try:
                outcome = dead_letter_replay(dead_letter_id=dead_letter_id, force=options["force"])
            except DeadLetterError as exc:
                raise CommandError(str(exc)) from exc
            outcomes.append(outcome)
            verb = "sent" if outcome.sent else "not sent"
            self.stdout.write(f"dead letter {dead_letter_id}: {verb} ({outcome.detail})")
        if options["wait"] > 0:
            self._wait_for_replays([o for o in outcomes if o.replay_task_id], options["wait"])

    def _wait_for_replays(self, outcomes: list[Any], seconds: float) -> None:
        deadline = time.monotonic() + seconds
        pending = {o.dead_letter_id: o.replay_task_id for o in outcomes}
        failed: list[int] = []
        while pending and time.monotonic() < deadline:
            for dead_letter_id, task_id in list(pending.items()):
                dead_letter = dead_letter_get(dead_letter_id=dead_letter_id)
                if dead_letter is None:
                    pending.pop(dead_letter_id)
                elif dead_letter.status == DeadLetter.Status.REPLAYED:
                    self.stdout.write(f"dead letter {dead_letter_id}: replayed successfully")
                    pending.pop(dead_letter_id)
                elif dead_letter.replay_task_id != task_id:
                    self.stdout.write(
                        f"dead letter {dead_letter_id}: replay failed: "
                        f"{dead_letter.exception_type}: {dead_letter.error}"
                    )
                    failed.append(dead_letter_id)
                    pending.pop(dead_letter_id)
            if pending:
                time.sleep(0.25)
        if pending:
            raise CommandError(
                "no outcome yet for dead letter(s) "
                + ", ".join(str(i) for i in pending)
                + " (is a worker running on their queue?)"
            )
        if failed:
            raise CommandError(
                "replay failed for dead letter(s) " + ", ".join(str(i) for i in failed)
            )

    def _set_status(self, options: dict[str, Any], action: str) -> None:
        ids = _positive_ids(options["ids"])
        missing = [i for i in ids if dead_letter_get(dead_letter_id=i) is None]
        if missing:
            raise CommandError("dead letter(s) do not exist: " + ", ".join(str(i) for i in missing))
        change = dead_letter_discard if action == "discard" else dead_letter_resolve
        for dead_letter_id in ids:
            dead_letter = change(dead_letter_id=dead_letter_id, note=options["note"])
            self.stdout.write(f"dead letter {dead_letter.pk}: {dead_letter.status}")

    def _discard(self, options: dict[str, Any]) -> None:
        self._set_status(options, "discard")

    def _resolve(self, options: dict[str, Any]) -> None:
        self._set_status(options, "resolve")

    def _purge(self, options: dict[str, Any]) -> None:
        try:
            age = parse_age(options["older_than"])
        except ValueError as exc:
            raise CommandError(f"--older-than: {exc}") from exc
        if age <= timedelta(0):
            raise CommandError("--older-than must be more than 0")
        statuses = sorted(set(options["status"] or CLOSED))
        matching = DeadLetter.objects.filter(
            last_failed_at__lt=timezone.now() - age, status__in=statuses
        ).count()
        described = (
            f"{matching} dead letter(s) ({', '.join(statuses)}) older than {options['older_than']}"
        )
        if options["dry_run"] or matching == 0:
            self.stdout.write(
                f"Would delete {described}." if matching else f"Nothing to purge: {described}."
            )
            return
        self._confirm(f"Delete {described}?", options)
        deleted = dead_letter_purge(older_than=age, statuses=statuses)
        self.stdout.write(f"Deleted {deleted} dead letter(s).")

    def _stats(self, options: dict[str, Any]) -> None:
        from apps.ops.health import queue_metrics
        from apps.ops.monitor import monitor_counts

        stats: dict[str, Any] = {"dead_letters": dead_letter_counts()}
        try:
            stats["monitor"] = monitor_counts()
            stats["queues"] = queue_metrics()
        except Exception as exc:
            stats["redis_error"] = f"{type(exc).__name__}: {exc}"
        if options["json"]:
            self.stdout.write(json.dumps(stats, indent=2))
            return
        counts = stats["dead_letters"]
        self.stdout.write(
            "dead letters: "
            + ", ".join(f"{k} {v}" for k, v in counts["by_status"].items())
            + f"; last hour {counts['last_hour']}"
        )
        for title, key in (("new by task", "new_by_task"), ("new by tenant", "new_by_tenant")):
            self.stdout.write(f"{title}:")
            for name, n in counts[key].items():
                self.stdout.write(f"  {n:>6}  {name}")
        if "queues" in stats:
            self.stdout.write("queue depths:")
            for name, depth in stats["queues"].items():
                self.stdout.write(f"  {depth:>6}  {name}")
        if "redis_error" in stats:
            self.stdout.write(f"Redis unavailable: {stats['redis_error']}")

    def _monitor(self, options: dict[str, Any]) -> None:
        from apps.ops.monitor import dead_letters_monitor

        report = dead_letters_monitor()
        self.stdout.write(
            f"monitor: {report.seen} entr(ies) seen, {report.logged} logged, "
            f"{report.stored} stored late, webhook {report.webhook}"
        )
