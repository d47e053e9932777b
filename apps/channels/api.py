"""API for WhatsApp numbers: list, create, status (with the QR while it waits for a scan),
start, stop, log out. Reading is open to every member; changes need an owner or admin."""

from __future__ import annotations

from django.db.models import QuerySet
from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.exceptions import NotFound
from rest_framework.generics import ListCreateAPIView, RetrieveAPIView
from rest_framework.permissions import IsAuthenticated
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from apps.api.permissions import CanManageTenant
from apps.channels import services
from apps.channels.models import WhatsAppSession
from apps.channels.selectors import whatsapp_session_get, whatsapp_session_list


class WhatsAppSessionSerializer(serializers.ModelSerializer):
    qr = serializers.SerializerMethodField(help_text="Pairing QR payload while one is shown.")
    is_alarm = serializers.BooleanField(read_only=True)

    class Meta:
        model = WhatsAppSession
        fields = [
            "session_id",
            "label",
            "status",
            "is_alarm",
            "wa_state",
            "reason",
            "phone",
            "qr",
            "qr_at",
            "ready_at",
            "status_at",
            "created_at",
        ]
        read_only_fields = [f for f in fields if f != "label"]

    def get_qr(self, session: WhatsAppSession) -> str | None:
        return session.qr if session.shows_qr else None


class ManageOnWrite(CanManageTenant):
    def has_permission(self, request: Request, view: APIView) -> bool:
        if request.method in ("GET", "HEAD", "OPTIONS"):
            return bool(request.user and request.user.is_authenticated)
        return super().has_permission(request, view)


class WhatsAppSessionListCreate(ListCreateAPIView):
    permission_classes = [ManageOnWrite]
    serializer_class = WhatsAppSessionSerializer

    def get_queryset(self) -> QuerySet[WhatsAppSession]:
        return whatsapp_session_list()

    def post(self, request: Request, *args: object, **kwargs: object) -> Response:
        """Create a number and start it: poll its status for the QR to scan."""
        serializer = WhatsAppSessionSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        session = services.whatsapp_session_create(label=serializer.validated_data["label"])
        services.whatsapp_session_start(session=session)
        return Response(WhatsAppSessionSerializer(session).data, status=status.HTTP_201_CREATED)


class WhatsAppSessionDetail(RetrieveAPIView):
    permission_classes = [IsAuthenticated]
    serializer_class = WhatsAppSessionSerializer
    lookup_field = "session_id"

    def get_queryset(self) -> QuerySet[WhatsAppSession]:
        return whatsapp_session_list()


class WhatsAppSessionAction(APIView):
    """POST …/start/, …/stop/ or …/logout/ (202: the gateway acts on it asynchronously)."""

    permission_classes = [CanManageTenant]
    action_name = ""

    @extend_schema(request=None, responses={202: WhatsAppSessionSerializer})
    def post(self, request: Request, session_id: str) -> Response:
        session = whatsapp_session_get(session_id=session_id)
        if session is None:
            raise NotFound()
        getattr(services, f"whatsapp_session_{self.action_name}")(session=session)
        return Response(WhatsAppSessionSerializer(session).data, status=status.HTTP_202_ACCEPTED)
