# Routes of this app under /api/v1/.
from django.urls import path

from apps.conversations import api

urlpatterns = [
    path("contacts/", api.ContactList.as_view(), name="contact-list"),
    path("contacts/<int:contact_id>/", api.ContactDetail.as_view(), name="contact-detail"),
    path("conversations/", api.ConversationList.as_view(), name="conversation-list"),
    path(
        "conversations/<int:conversation_id>/",
        api.ConversationDetail.as_view(),
        name="conversation-detail",
    ),
    path(
        "conversations/<int:conversation_id>/handoff/",
        api.ConversationHandoff.as_view(),
        name="conversation-handoff",
    ),
    path(
        "conversations/<int:conversation_id>/return/",
        api.ConversationReturn.as_view(),
        name="conversation-return",
    ),
    path(
        "conversations/<int:conversation_id>/close/",
        api.ConversationClose.as_view(),
        name="conversation-close",
    ),
    path(
        "conversations/<int:conversation_id>/assign/",
        api.ConversationAssign.as_view(),
        name="conversation-assign",
    ),
    path(
        "conversations/<int:conversation_id>/messages/",
        api.MessageListCreate.as_view(),
        name="message-list",
    ),
]
