"""DRF endpoints for agents: every member reads, owners and admins write."""

from __future__ import annotations

from typing import Any

from django.core.exceptions import ValidationError
from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.permissions import SAFE_METHODS
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from apps.agents.models import Agent
from apps.agents.selectors import agent_get, agent_list
from apps.agents.services import AGENT_FIELDS, agent_create, agent_delete, agent_update
from apps.api.permissions import CanManageTenant


class AgentSerializer(serializers.ModelSerializer):
    sales_goals = serializers.ListField(
        child=serializers.ChoiceField(choices=Agent.Goal.choices), required=False
    )
    document_ids = serializers.ListField(child=serializers.IntegerField(), required=False)
    handoff_keywords = serializers.ListField(
        child=serializers.CharField(max_length=60), required=False
    )
    business_days = serializers.ListField(
        child=serializers.IntegerField(min_value=1, max_value=7), required=False
    )

    class Meta:
        model = Agent
        fields = ["id", *AGENT_FIELDS, "created_at", "updated_at"]
        read_only_fields = ["id", "created_at", "updated_at"]
        # One default agent per tenant is kept by the service (a new default takes the flag).
        extra_kwargs: dict[str, dict[str, list]] = {"is_default": {"validators": []}}
        validators: list = []


def _not_found() -> Response:
    return Response(
        {"error": {"status": 404, "code": "not_found", "message": "No such agent."}},
        status=status.HTTP_404_NOT_FOUND,
    )


def _invalid(exc: ValidationError) -> Response:
    fields: dict[str, Any] = getattr(exc, "message_dict", {})
    message = " ".join(exc.messages)
    if fields:
        name, errors = next(iter(fields.items()))
        message = f"{name}: {errors[0]}"
    body: dict[str, Any] = {"status": 400, "code": "invalid", "message": message}
    if fields:
        body["fields"] = fields
    return Response({"error": body}, status=status.HTTP_400_BAD_REQUEST)


class _WritesNeedManager(CanManageTenant):
    def has_permission(self, request, view) -> bool:
        if request.method in SAFE_METHODS:
            return bool(request.user and request.user.is_authenticated)
        return super().has_permission(request, view)


class AgentListCreate(APIView):
    permission_classes = [_WritesNeedManager]
    serializer_class = AgentSerializer

    @extend_schema(operation_id="agents_list", responses=AgentSerializer(many=True))
    def get(self, request: Request) -> Response:
        from rest_framework.pagination import PageNumberPagination

        paginator = PageNumberPagination()
        page = paginator.paginate_queryset(agent_list(), request, view=self)
        return paginator.get_paginated_response(AgentSerializer(page, many=True).data)

    def post(self, request: Request) -> Response:
        serializer = AgentSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        try:
            agent = agent_create(**serializer.validated_data)
        except ValidationError as exc:
            return _invalid(exc)
        return Response(AgentSerializer(agent).data, status=status.HTTP_201_CREATED)


class AgentDetail(APIView):
    permission_classes = [_WritesNeedManager]
    serializer_class = AgentSerializer

    def get(self, request: Request, agent_id: int) -> Response:
        agent = agent_get(agent_id=agent_id)
        return Response(AgentSerializer(agent).data) if agent else _not_found()

    def patch(self, request: Request, agent_id: int) -> Response:
        agent = agent_get(agent_id=agent_id)
        if agent is None:
            return _not_found()
        serializer = AgentSerializer(agent, data=request.data, partial=True)
        serializer.is_valid(raise_exception=True)
        try:
            agent = agent_update(agent=agent, **serializer.validated_data)
        except ValidationError as exc:
            return _invalid(exc)
        return Response(AgentSerializer(agent).data)

    def delete(self, request: Request, agent_id: int) -> Response:
        agent = agent_get(agent_id=agent_id)
        if agent is None:
            return _not_found()
        agent_delete(agent=agent)
        return Response(status=status.HTTP_204_NO_CONTENT)
