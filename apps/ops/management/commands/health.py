import json

from django.core.management.base import BaseCommand, CommandError

from apps.ops.health import readiness


class Command(BaseCommand):
    help = (
        "Check EVA's dependencies (database, migrations, Redis, a Celery worker) like /readyz "
        "and print one line per check. Exits 1 when any check fails."
    )

    def add_arguments(self, parser):
        parser.add_argument("--json", action="store_true", help="Print the JSON body of /readyz.")

    def handle(self, *args, **options):
        ok, checks = readiness()
        if options["json"]:
            self.stdout.write(json.dumps({"status": "ok" if ok else "fail", "checks": checks}))
        else:
            for name, result in checks.items():
                mark = "ok  " if result["ok"] else "FAIL"
                self.stdout.write(f"{mark} {name:<11} {result['detail']}")
        if not ok:
            raise CommandError("some dependencies are not ready")
