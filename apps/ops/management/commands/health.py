import json

from django.core.management.base import BaseCommand, CommandError

from apps.ops.health import metrics, readiness


class Command(BaseCommand):
    help = (
        "Check EVA's dependencies (database, migrations, Redis, media storage, a Celery worker) "
        "like /readyz and print one line per check, then the operator figures (queue depths, "
        "dead letters, the inbound stream). Exits 1 when any check fails."
    )

    def add_arguments(self, parser):
        parser.add_argument("--json", action="store_true", help="Print the JSON body of /readyz.")

    def handle(self, *args, **options):
        ok, checks = readiness()
        figures = metrics()
        if options["json"]:
            self.stdout.write(
                json.dumps({"status": "ok" if ok else "fail", "checks": checks, "metrics": figures})
            )
        else:
            for name, result in checks.items():
                mark = "ok  " if result["ok"] else "FAIL"
                self.stdout.write(f"{mark} {name:<11} {result['detail']}")
            for name, value in figures.items():
                if isinstance(value, dict) and "error" in value:
                    shown = f"unavailable ({value['error']})"
                elif name == "inbound" and isinstance(value, dict):
                    groups = value.get("groups") or {}
                    shown = f"{value.get('length', 0)} entries; " + (
                        ", ".join(
                            f"{group}: {info['pending']} pending, oldest "
                            f"{info['oldest_pending_age_s'] or 0}s"
                            for group, info in groups.items()
                        )
                        or "no consumer group yet"
                    )
                elif isinstance(value, dict):
                    shown = ", ".join(f"{key} {number}" for key, number in value.items())
                else:
                    shown = str(value)
                self.stdout.write(f"     {name:<11} {shown}")
        if not ok:
            raise CommandError("some dependencies are not ready")
