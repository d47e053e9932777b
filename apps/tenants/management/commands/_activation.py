from django.core.management.base import BaseCommand, CommandError

from apps.tenants.selectors import tenant_get_by_slug
from apps.tenants.services import TenantError, tenant_set_active


class ActivationCommand(BaseCommand):
    active: bool

    def add_arguments(self, parser):
        parser.add_argument("slug", help="The tenant's slug (see `manage.py tenant_list`).")

    def handle(self, *args, **options):
        tenant = tenant_get_by_slug(slug=options["slug"])
        if tenant is None:
            raise CommandError(f"No tenant with slug {options['slug']!r}.")
        try:
            tenant_set_active(tenant=tenant, active=self.active)
        except TenantError as exc:
            raise CommandError(str(exc)) from exc
        state = "active" if self.active else "deactivated"
        self.stdout.write(self.style.SUCCESS(f"Tenant {tenant.slug!r} is now {state}."))
