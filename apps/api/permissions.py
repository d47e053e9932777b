from rest_framework.permissions import BasePermission
from rest_framework.request import Request
from rest_framework.views import APIView


class CanManageTenant(BasePermission):
    """Owners and admins only (tokens, agents, settings)."""

    message = "Only the tenant's owners and admins may do this."

    def has_permission(self, request: Request, view: APIView) -> bool:
        return bool(request.user and request.user.is_authenticated and request.user.can_manage)
