"""API: /api/v1/webhooks/ — endpoints and their deliveries (owners' and admins' tokens)."""

from __future__ import annotations

from typing import Any, cast

from django.db.models import QuerySet
from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.exceptions import NotFound
from rest_framework.generics import ListAPIView
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from apps.accounts.models import User
from apps.api.permissions import CanManageTenant
from apps.webhooks import services
from apps.webhooks.events import Event
from apps.webhooks.models import WebhookDelivery, WebhookEndpoint
from apps.webhooks.selectors import (
    webhook_delivery_get,
    webhook_delivery_list,
    webhook_endpoint_get,
    webhook_endpoint_list,
)


class WebhookEndpointSerializer(serializers.ModelSerializer):
    # Checked by the service, which says why an address is refused.
    url = serializers.CharField(max_length=500)
    events = serializers.ListField(child=serializers.ChoiceField(choices=Event.choices))

    class Meta:
        model = WebhookEndpoint
        fields = ["id", "url", "description", "events", "is_active", "created_at", "updated_at"]
        read_only_fields = ["created_at", "updated_at"]


class WebhookEndpointCreatedSerializer(WebhookEndpointSerializer):
    secret = serializers.CharField(read_only=True, help_text="Shown once; store it now.")

    class Meta(WebhookEndpointSerializer.Meta):
        fields = [*WebhookEndpointSerializer.Meta.fields, "secret"]


class WebhookSecretSerializer(serializers.Serializer):
    secret = serializers.CharField(read_only=True, help_text="Shown once; store it now.")


class WebhookDeliverySerializer(serializers.ModelSerializer):
    class Meta:
        model = WebhookDelivery
        fields = [
            "id",
            "event_id",
            "event",
            "status",
            "attempts",
            "response_status",
            "error",
            "created_at",
            "last_attempt_at",
            "delivered_at",
            "payload",
        ]


def _endpoint(endpoint_id: int) -> WebhookEndpoint:
    endpoint = webhook_endpoint_get(endpoint_id=endpoint_id)
    if endpoint is None:
        raise NotFound("No such webhook endpoint.")
    return endpoint


class WebhookEndpointListCreate(ListAPIView):
    permission_classes = [CanManageTenant]
    serializer_class = WebhookEndpointSerializer

    def get_queryset(self) -> QuerySet[WebhookEndpoint]:
        return webhook_endpoint_list()

    @extend_schema(
        request=WebhookEndpointSerializer, responses={201: WebhookEndpointCreatedSerializer}
    )
    def post(self, request: Request) -> Response:
        """Add an endpoint; its signing secret is in this answer only."""
        serializer = WebhookEndpointSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        endpoint, secret = services.webhook_endpoint_create(
            url=data["url"],
            events=data["events"],
            description=data.get("description", ""),
            created_by=cast(User, request.user),  # the permission admits members only
        )
        if data.get("is_active") is False:
            endpoint = services.webhook_endpoint_update(endpoint_id=endpoint.pk, is_active=False)
        body: dict[str, Any] = {**WebhookEndpointSerializer(endpoint).data, "secret": secret}
        return Response(body, status=status.HTTP_201_CREATED)


class WebhookEndpointDetail(APIView):
    permission_classes = [CanManageTenant]

    @extend_schema(responses=WebhookEndpointSerializer)
    def get(self, request: Request, endpoint_id: int) -> Response:
        return Response(WebhookEndpointSerializer(_endpoint(endpoint_id)).data)

    @extend_schema(request=WebhookEndpointSerializer, responses=WebhookEndpointSerializer)
    def patch(self, request: Request, endpoint_id: int) -> Response:
        endpoint = _endpoint(endpoint_id)
        serializer = WebhookEndpointSerializer(endpoint, data=request.data, partial=True)
        serializer.is_valid(raise_exception=True)
        endpoint = services.webhook_endpoint_update(
            endpoint_id=endpoint.pk, **serializer.validated_data
        )
        return Response(WebhookEndpointSerializer(endpoint).data)

    @extend_schema(responses={204: None})
    def delete(self, request: Request, endpoint_id: int) -> Response:
        """Delete the endpoint and its deliveries (those not yet sent are not sent)."""
        services.webhook_endpoint_delete(endpoint_id=_endpoint(endpoint_id).pk)
        return Response(status=status.HTTP_204_NO_CONTENT)


class WebhookSecretRoll(APIView):
    permission_classes = [CanManageTenant]

    @extend_schema(request=None, responses=WebhookSecretSerializer)
    def post(self, request: Request, endpoint_id: int) -> Response:
        """A new signing secret (the old one stops signing at once)."""
        _rolled, secret = services.webhook_secret_roll(endpoint_id=_endpoint(endpoint_id).pk)
        return Response({"secret": secret})


class WebhookTest(APIView):
    permission_classes = [CanManageTenant]

    @extend_schema(request=None, responses={202: WebhookDeliverySerializer})
    def post(self, request: Request, endpoint_id: int) -> Response:
        """Queue a ``webhook.test`` event for this endpoint."""
        delivery = services.webhook_test_send(endpoint_id=_endpoint(endpoint_id).pk)
        return Response(WebhookDeliverySerializer(delivery).data, status=status.HTTP_202_ACCEPTED)


class WebhookDeliveryList(ListAPIView):
    """The endpoint's deliveries, newest first."""

    permission_classes = [CanManageTenant]
    serializer_class = WebhookDeliverySerializer

    def get_queryset(self) -> QuerySet[WebhookDelivery]:
        return webhook_delivery_list(endpoint_id=_endpoint(self.kwargs["endpoint_id"]).pk)


class WebhookRedeliver(APIView):
    permission_classes = [CanManageTenant]

    @extend_schema(request=None, responses={202: WebhookDeliverySerializer})
    def post(self, request: Request, endpoint_id: int, delivery_id: int) -> Response:
        """Send a delivery that failed (or still waits) again, with the same event id."""
        delivery = webhook_delivery_get(
            endpoint_id=_endpoint(endpoint_id).pk, delivery_id=delivery_id
        )
        if delivery is None:
            raise NotFound("No such delivery.")
        delivery = services.webhook_redeliver(delivery_id=delivery.pk)
        return Response(WebhookDeliverySerializer(delivery).data, status=status.HTTP_202_ACCEPTED)
