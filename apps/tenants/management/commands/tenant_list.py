from django.core.management.base import BaseCommand

from apps.tenants.selectors import tenant_list


class Command(BaseCommand):
    help = "List tenants: slug, schema, active or not, domains and creation date."

    def handle(self, *args, **options):
        tenants = list(tenant_list())
        if not tenants:
            self.stdout.write("No tenants yet. Create one with `manage.py tenant_create`.")
            return
        self.stdout.write(f"{'SLUG':<20} {'SCHEMA':<20} {'ACTIVE':<7} {'CREATED':<17} DOMAINS")
        for tenant in tenants:
            domains = ", ".join(d.domain for d in tenant.domains.all())
            created = tenant.created_at.strftime("%Y-%m-%d %H:%M")
            active = "yes" if tenant.is_active else "no"
            self.stdout.write(
                f"{tenant.slug:<20} {tenant.schema_name:<20} {active:<7} {created:<17} {domains}"
            )
