from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from apps.accounts.services import tenant_onboard
from apps.tenants.services import TenantError, public_tenant_ensure

DEMO_EMAIL = "owner@demo.example.com"
DEMO_PASSWORD = "eva-demo-owner"  # noqa: S105 - a published demo login, local use only


class Command(BaseCommand):
    help = (
        "Create (or keep) the demo tenant 'demo' at demo.EVA_BASE_DOMAIN with an owner login, "
        "and print the URL and credentials. Safe to run repeatedly."
    )

    def add_arguments(self, parser):
        parser.add_argument("--port", type=int, default=8000, help="Port shown in the printed URL.")

    def handle(self, *args, **options):
        public_tenant_ensure()
        try:
            result = tenant_onboard(
                slug=settings.EVA_DEMO_SLUG,
                name="Demo Store",
                owner_email=DEMO_EMAIL,
                owner_password=DEMO_PASSWORD,
            )
        except TenantError as exc:
            raise CommandError(f"Could not create the demo tenant: {exc}") from exc
        scheme = "https" if settings.EVA_HTTPS else "http"
        port = "" if options["port"] in (80, 443) else f":{options['port']}"
        verb = "Created" if result.created else "Kept"
        self.stdout.write(self.style.SUCCESS(f"{verb} demo tenant {result.tenant.slug!r}."))
        self.stdout.write(f"  URL:      {scheme}://{result.domain}{port}/")
        self.stdout.write(f"  login:    {DEMO_EMAIL}")
        self.stdout.write(f"  password: {DEMO_PASSWORD}")
        self._demo_agent(result.tenant.schema_name, f"{scheme}://{result.domain}{port}")

    def _demo_agent(self, schema: str, base_url: str) -> None:
        """A ready sales agent and a small price list, so the simulator answers at once."""
        from django_tenants.utils import schema_context

        from apps.accounts.models import User
        from apps.agents.demo import demo_agent_ensure, demo_catalogue_ensure

        with schema_context(schema):
            agent, agent_created = demo_agent_ensure()
            owner = User.objects.filter(email=DEMO_EMAIL).first()
            _document_id, document_created = demo_catalogue_ensure(owner=owner)
        verb = "Created" if agent_created else "Kept"
        self.stdout.write(
            f"{verb} demo agent {agent.name!r}"
            + (" and its price list (being indexed by the worker)." if document_created else ".")
        )
        self.stdout.write(f"  simulator: {base_url}/agents/{agent.pk}/simulator/")
