from __future__ import annotations

from typing import cast

from django.urls import reverse
from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.generics import ListCreateAPIView
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from apps.accounts.models import ApiToken, User
from apps.accounts.selectors import api_token_get_for_user, api_token_list
from apps.accounts.services import api_token_create, api_token_revoke
from apps.api.permissions import CanManageTenant


def _user(request: Request) -> User:
    # Every view here requires authentication, so the user is never anonymous.
    return cast(User, request.user)


class MeSerializer(serializers.Serializer):
    email = serializers.EmailField()
    role = serializers.CharField()
    tenant = serializers.CharField()


class MeView(APIView):
    @extend_schema(responses=MeSerializer)
    def get(self, request: Request) -> Response:
        tenant = request.tenant  # type: ignore[attr-defined]
        user = _user(request)
        return Response({"email": user.email, "role": user.role, "tenant": tenant.slug})


class ApiTokenSerializer(serializers.ModelSerializer):
    created_by = serializers.EmailField(source="created_by.email", read_only=True)
    is_active = serializers.BooleanField(read_only=True)

    class Meta:
        model = ApiToken
        fields = [
            "id",
            "name",
            "prefix",
            "created_by",
            "created_at",
            "last_used_at",
            "revoked_at",
            "is_active",
        ]
        read_only_fields = ["prefix", "created_at", "last_used_at", "revoked_at"]


class ApiTokenCreatedSerializer(ApiTokenSerializer):
    key = serializers.CharField(read_only=True, help_text="Shown once; store it now.")

    class Meta(ApiTokenSerializer.Meta):
        fields = [*ApiTokenSerializer.Meta.fields, "key"]


class ApiTokenListCreate(ListCreateAPIView):
    permission_classes = [CanManageTenant]
    serializer_class = ApiTokenSerializer

    def get_queryset(self):
        return api_token_list()

    @extend_schema(responses={201: ApiTokenCreatedSerializer})
    def post(self, request: Request, *args: object, **kwargs: object) -> Response:
        serializer = ApiTokenSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        token, raw_key = api_token_create(
            created_by=_user(request), name=serializer.validated_data["name"]
        )
        body = ApiTokenSerializer(token).data | {"key": raw_key}
        return Response(body, status=status.HTTP_201_CREATED)


class ApiTokenRevoke(APIView):
    permission_classes = [CanManageTenant]

    @extend_schema(request=None, responses=ApiTokenSerializer)
    def post(self, request: Request, token_id: int) -> Response:
        token = api_token_get_for_user(user=_user(request), token_id=token_id)
        if token is None:
            return Response(
                {"error": {"status": 404, "code": "not_found", "message": "No such token."}},
                status=status.HTTP_404_NOT_FOUND,
            )
        return Response(ApiTokenSerializer(api_token_revoke(token=token)).data)


class ApiRoot(APIView):
    """EVA's integrator API. Every path below is scoped to the tenant whose host you call."""

    @extend_schema(exclude=True)
    def get(self, request: Request) -> Response:
        def link(name: str) -> str:
            return request.build_absolute_uri(reverse(name))

        return Response(
            {
                "me": link("api:v1:me"),
                "tokens": link("api:v1:token-list"),
                "webhooks": link("api:v1:webhook-list"),
                "schema": link("api:schema"),
                "docs": link("api:docs"),
            }
        )
