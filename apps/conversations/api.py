"""DRF endpoints: contacts (leads), conversations (list, detail, handoff, return, close) and
their messages (list, send as staff). Every member of the tenant may use them."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, cast

from django.core.exceptions import ValidationError
from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.pagination import PageNumberPagination
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from apps.accounts.models import User
from apps.conversations.models import Contact, Conversation, Message
from apps.conversations.selectors import (
    contact_get_for_user,
    contact_list,
    conversation_get_for_user,
    conversation_list,
    message_list,
)
from apps.conversations.services import (
    contact_erase,
    contact_update,
    conversation_assign,
    conversation_close,
    conversation_handoff,
    conversation_return_to_bot,
    staff_message_send,
)


def _user(request: Request) -> User:
    return cast(User, request.user)


def _not_found(what: str) -> Response:
    return Response(
        {"error": {"status": 404, "code": "not_found", "message": f"No such {what}."}},
        status=status.HTTP_404_NOT_FOUND,
    )


def _invalid(exc: ValidationError) -> Response:
    fields: dict[str, Any] = getattr(exc, "message_dict", {})
    body: dict[str, Any] = {"status": 400, "code": "invalid", "message": " ".join(exc.messages)}
    if fields:
        name, errors = next(iter(fields.items()))
        body["message"] = f"{name}: {errors[0]}"
        body["fields"] = fields
    return Response({"error": body}, status=status.HTTP_400_BAD_REQUEST)


def _page(request: Request, view: APIView, queryset: Any, serializer: type) -> Response:
    paginator = PageNumberPagination()
    page = paginator.paginate_queryset(queryset, request, view=view)
    return paginator.get_paginated_response(serializer(page, many=True).data)


class ContactSerializer(serializers.ModelSerializer):
    class Meta:
        model = Contact
        fields = [
            "id",
            "wa_id",
            "phone",
            "name",
            "name_source",
            "language",
            "email",
            "company",
            "interest",
            "budget",
            "notes",
            "stage",
            "opted_out",
            "opted_out_at",
            "first_contact_at",
            "last_contact_at",
        ]
        read_only_fields = [
            "id",
            "wa_id",
            "name_source",
            "opted_out",
            "opted_out_at",
            "first_contact_at",
            "last_contact_at",
        ]


class ConversationSerializer(serializers.ModelSerializer):
    contact = ContactSerializer(read_only=True)
    assigned_to = serializers.EmailField(source="assigned_to.email", read_only=True, default=None)

    class Meta:
        model = Conversation
        fields = [
            "id",
            "contact",
            "channel",
            "channel_ref",
            "agent_id",
            "mode",
            "human_until",
            "handoff_reason",
            "handoff_at",
            "assigned_to",
            "unread_count",
            "last_message_at",
            "last_message_preview",
            "created_at",
        ]
        read_only_fields = fields


class MessageSerializer(serializers.ModelSerializer):
    author = serializers.EmailField(source="author.email", read_only=True, default=None)

    class Meta:
        model = Message
        fields = [
            "id",
            "conversation_id",
            "direction",
            "sender",
            "kind",
            "text",
            "transcript",
            "transcript_language",
            "media",
            "external_id",
            "status",
            "error",
            "author",
            "provider",
            "model",
            "latency_ms",
            "tokens_in",
            "tokens_out",
            "citations",
            "replied_to_ids",
            "is_handoff_notice",
            "sent_at",
            "created_at",
        ]
        read_only_fields = fields


class StaffMessageSerializer(serializers.Serializer):
    text = serializers.CharField(max_length=4096, required=False, allow_blank=True, default="")
    file = serializers.FileField(
        required=False,
        help_text=(
            "A picture (JPEG, PNG, WebP), audio (OGG, MP3, M4A), a PDF, a Word or Excel file, "
            "or a text or CSV file (multipart/form-data); `text` is then its caption."
        ),
    )


class HandoffSerializer(serializers.Serializer):
    reason = serializers.CharField(max_length=200, required=False, default="")


class ContactFilterSerializer(serializers.Serializer):
    """A list's filters: a value outside the choices is a 400 naming it, not an empty list."""

    stage = serializers.ChoiceField(choices=Contact.Stage.choices, required=False)
    q = serializers.CharField(max_length=100, required=False, allow_blank=True)


class ConversationFilterSerializer(ContactFilterSerializer):
    mode = serializers.ChoiceField(choices=Conversation.Mode.choices, required=False)
    agent = serializers.IntegerField(min_value=1, required=False)
    channel = serializers.ChoiceField(choices=Conversation.Channel.choices, required=False)
    unread = serializers.BooleanField(required=False, default=False)


def _filters(request: Request, serializer: type[serializers.Serializer]) -> dict[str, Any]:
    given = {key: value for key, value in request.query_params.items() if value != ""}
    filters = serializer(data=given)
    filters.is_valid(raise_exception=True)
    return dict(filters.validated_data)


class ContactList(APIView):
    serializer_class = ContactSerializer

    @extend_schema(
        operation_id="contacts_list",
        parameters=[ContactFilterSerializer],
        responses=ContactSerializer(many=True),
    )
    def get(self, request: Request) -> Response:
        filters = _filters(request, ContactFilterSerializer)
        qs = contact_list(stage=filters.get("stage"), search=filters.get("q") or None)
        return _page(request, self, qs, ContactSerializer)


class ContactDetail(APIView):
    serializer_class = ContactSerializer

    def get(self, request: Request, contact_id: int) -> Response:
        contact = contact_get_for_user(user=_user(request), contact_id=contact_id)
        return Response(ContactSerializer(contact).data) if contact else _not_found("contact")

    def patch(self, request: Request, contact_id: int) -> Response:
        contact = contact_get_for_user(user=_user(request), contact_id=contact_id)
        if contact is None:
            return _not_found("contact")
        serializer = ContactSerializer(contact, data=request.data, partial=True)
        serializer.is_valid(raise_exception=True)
        try:
            contact = contact_update(contact=contact, **serializer.validated_data)
        except ValidationError as exc:
            return _invalid(exc)
        return Response(ContactSerializer(contact).data)

    @extend_schema(responses={204: None})
    def delete(self, request: Request, contact_id: int) -> Response:
        """Erase the customer: contact, conversations, messages and their files (owners and
        admins; a data-protection request)."""
        contact = contact_get_for_user(user=_user(request), contact_id=contact_id)
        if contact is None:
            return _not_found("contact")
        contact_erase(contact_id=contact.pk, by=_user(request))
        return Response(status=status.HTTP_204_NO_CONTENT)


class ConversationList(APIView):
    """Filters: ``mode``, ``stage``, ``agent``, ``channel``, ``unread=1``, ``q``."""

    serializer_class = ConversationSerializer

    @extend_schema(
        operation_id="conversations_list",
        parameters=[ConversationFilterSerializer],
        responses=ConversationSerializer(many=True),
    )
    def get(self, request: Request) -> Response:
        filters = _filters(request, ConversationFilterSerializer)
        qs = conversation_list(
            mode=filters.get("mode"),
            unread=filters["unread"],
            stage=filters.get("stage"),
            agent_id=filters.get("agent"),
            channel=filters.get("channel"),
            search=filters.get("q") or None,
        )
        return _page(request, self, qs, ConversationSerializer)


class ConversationDetail(APIView):
    serializer_class = ConversationSerializer

    def get(self, request: Request, conversation_id: int) -> Response:
        conversation = conversation_get_for_user(
            user=_user(request), conversation_id=conversation_id
        )
        if conversation is None:
            return _not_found("conversation")
        return Response(ConversationSerializer(conversation).data)


class _ConversationAction(APIView):
    """POST /conversations/<id>/<action>/: runs ``act`` (each subclass's service call) on the
    user's conversation and answers with the conversation as it is afterwards."""

    serializer_class = ConversationSerializer
    act: Callable[[Request, Conversation], None]

    @extend_schema(request=HandoffSerializer, responses=ConversationSerializer)
    def post(self, request: Request, conversation_id: int) -> Response:
        conversation = conversation_get_for_user(
            user=_user(request), conversation_id=conversation_id
        )
        if conversation is None:
            return _not_found("conversation")
        self.act(request, conversation)
        conversation.refresh_from_db()
        return Response(ConversationSerializer(conversation).data)


class ConversationHandoff(_ConversationAction):
    """Take the conversation over: the bot stays silent until it is returned."""

    def act(self, request: Request, conversation: Conversation) -> None:
        serializer = HandoffSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        reason = serializer.validated_data["reason"] or f"taken over by {_user(request).email}"
        conversation_handoff(conversation_id=conversation.pk, reason=reason, user=_user(request))


class ConversationReturn(_ConversationAction):
    def act(self, request: Request, conversation: Conversation) -> None:
        conversation_return_to_bot(conversation_id=conversation.pk, user=_user(request))


class ConversationClose(_ConversationAction):
    def act(self, request: Request, conversation: Conversation) -> None:
        conversation_close(conversation_id=conversation.pk, user=_user(request))


class AssignSerializer(serializers.Serializer):
    user_id = serializers.IntegerField(min_value=1, allow_null=True)


class ConversationAssign(_ConversationAction):
    """Give the conversation to a team member (``{"user_id": null}``: to nobody)."""

    @extend_schema(request=AssignSerializer, responses=ConversationSerializer)
    def post(self, request: Request, conversation_id: int) -> Response:
        return super().post(request, conversation_id)

    def act(self, request: Request, conversation: Conversation) -> None:
        serializer = AssignSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        conversation_assign(
            conversation_id=conversation.pk,
            assignee_id=serializer.validated_data["user_id"],
            user=_user(request),
        )


class MessageListCreate(APIView):
    serializer_class = MessageSerializer

    @extend_schema(operation_id="messages_list", responses=MessageSerializer(many=True))
    def get(self, request: Request, conversation_id: int) -> Response:
        conversation = conversation_get_for_user(
            user=_user(request), conversation_id=conversation_id
        )
        if conversation is None:
            return _not_found("conversation")
        return _page(request, self, message_list(conversation=conversation), MessageSerializer)

    @extend_schema(request=StaffMessageSerializer, responses={201: MessageSerializer})
    def post(self, request: Request, conversation_id: int) -> Response:
        """Send a message as staff (takes the conversation over): a text, or a file with an
        optional caption (multipart/form-data)."""
        conversation = conversation_get_for_user(
            user=_user(request), conversation_id=conversation_id
        )
        if conversation is None:
            return _not_found("conversation")
        serializer = StaffMessageSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        try:
            upload = serializer.validated_data.get("file")
            message = staff_message_send(
                conversation_id=conversation.pk,
                author=_user(request),
                text=serializer.validated_data["text"],
                attachment=upload,
                attachment_name=upload.name if upload else "",
            )
        except ValidationError as exc:
            return _invalid(exc)
        return Response(MessageSerializer(message).data, status=status.HTTP_201_CREATED)
