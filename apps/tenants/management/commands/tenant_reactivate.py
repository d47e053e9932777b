from apps.tenants.management.commands._activation import ActivationCommand


class Command(ActivationCommand):
    help = "Reactivate a deactivated tenant: dashboard, API and agents work again."
    active = True
