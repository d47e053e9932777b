import getpass
import secrets

from django.core.management.base import BaseCommand, CommandError

from apps.accounts.services import tenant_onboard
from apps.tenants.services import TenantError


class Command(BaseCommand):
    help = (
        "Create a tenant in one step: its PostgreSQL schema (migrated), its primary domain "
        "(<slug>.EVA_BASE_DOMAIN unless --domain is given) and its first owner user. "
        "Running it again with the same values changes nothing; a slug or domain already "
        "taken by another tenant is refused (exit code 1) and existing tenants stay intact."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "slug", help="Short id, 3-40 chars: lowercase letters, digits, hyphens."
        )
        parser.add_argument(
            "--name", required=True, help="The business name shown in the dashboard."
        )
        parser.add_argument(
            "--owner-email", required=True, help="Email of the first owner (login)."
        )
        parser.add_argument(
            "--owner-password",
            help="Owner password. Omit to be prompted; with --no-input a random one is printed.",
        )
        parser.add_argument(
            "--domain", help="Host name to route to the tenant (default <slug>.EVA_BASE_DOMAIN)."
        )
        parser.add_argument("--no-input", action="store_true", help="Never prompt.")

    def handle(self, *args, **options):
        password = options["owner_password"]
        generated = False
        if password is None:
            if options["no_input"]:
                password, generated = secrets.token_urlsafe(12), True
            else:
                password = getpass.getpass("Owner password: ")
        try:
            result = tenant_onboard(
                slug=options["slug"],
                name=options["name"],
                owner_email=options["owner_email"],
                owner_password=password,
                domain=options["domain"],
            )
        except TenantError as exc:
            raise CommandError(str(exc)) from exc
        if not result.created:
            self.stdout.write(
                f"Tenant {result.tenant.slug!r} already exists with these values; nothing changed."
            )
            return
        self.stdout.write(
            self.style.SUCCESS(
                f"Created tenant {result.tenant.slug!r} (schema {result.tenant.schema_name})."
            )
        )
        self.stdout.write(f"  domain: {result.domain}")
        self.stdout.write(f"  owner:  {result.owner.email}")
        if generated:
            self.stdout.write(f"  password: {password}  (shown once)")
