"""Dashboard pages of this app: the inbox and its threads (inbox.py), the leads (leads.py)."""

from apps.conversations.views.inbox import (
    contact_erase_view,
    conversation_assign_view,
    conversation_close_view,
    conversation_reply_view,
    conversation_return_view,
    conversation_takeover_view,
    conversation_thread_view,
    conversation_view,
    inbox_view,
    lead_edit_view,
    message_media_view,
    needs_human_badge_view,
)
from apps.conversations.views.leads import lead_export_view, lead_list_view

__all__ = [
    "contact_erase_view",
    "conversation_assign_view",
    "conversation_close_view",
    "conversation_reply_view",
    "conversation_return_view",
    "conversation_takeover_view",
    "conversation_thread_view",
    "conversation_view",
    "inbox_view",
    "lead_edit_view",
    "lead_export_view",
    "lead_list_view",
    "message_media_view",
    "needs_human_badge_view",
]
