from apps.tenants.management.commands._activation import ActivationCommand


class Command(ActivationCommand):
    help = (
        "Deactivate a tenant: its dashboard and API answer 403 and its agents stop replying. "
        "All its data is kept; `tenant_reactivate` undoes it."
    )
    active = False
