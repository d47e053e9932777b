from django.conf import settings
from django.db import migrations


def create_public_tenant(apps, schema_editor):
    # Historical models do not create schemas on save; the public schema already exists.
    Tenant = apps.get_model("tenants", "Tenant")
    Domain = apps.get_model("tenants", "Domain")
    tenant, _ = Tenant.objects.get_or_create(
        schema_name="public", defaults={"slug": "public", "name": "EVA platform"}
    )
    Domain.objects.get_or_create(
        domain=settings.EVA_BASE_DOMAIN, defaults={"tenant": tenant, "is_primary": True}
    )


class Migration(migrations.Migration):
    dependencies = [("tenants", "0001_initial")]
    operations = [migrations.RunPython(create_public_tenant, migrations.RunPython.noop)]
