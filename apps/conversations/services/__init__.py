"""Writes on contacts, conversations and messages. Surfaces (the WhatsApp consumer, the simulator,
the transcription worker, the dashboard, the API) and the agent engine all come through here;
one module per concern, everything importable from ``apps.conversations.services``.

Concurrency: every write that depends on a conversation's state (storing a bot reply, handing
off, a staff reply) locks the conversation row first (``SELECT … FOR UPDATE``), so a bot reply
computed before a handoff is refused once the handoff committed.
"""

from apps.conversations.services.consent import (
    opt_in_requested,
    opt_out_requested,
)
from apps.conversations.services.contacts import (
    LEAD_FIELDS,
    contact_erase,
    contact_language_set,
    contact_lead_fields_fill,
    contact_update,
    lead_field_open,
)
from apps.conversations.services.delivery import (
    DELIVERY_TASK,
    bot_reply_deliver,
    message_command_assign,
    message_delivery_ack,
    message_is_sendable,
    message_mark_failed,
    message_status_update,
)
from apps.conversations.services.handoff import (
    conversation_assign,
    conversation_close,
    conversation_handoff,
    conversation_mark_read,
    conversation_return_to_bot,
    staff_message_send,
)
from apps.conversations.services.inbound import (
    InboundBatch,
    InboundMessage,
    InboundRecord,
    InboundStoring,
    business_message_record,
    durability_position,
    durability_wait,
    inbound_message_record,
    inbound_messages_prepare,
    inbound_messages_record,
    inbound_messages_send,
    message_transcript_set,
)
from apps.conversations.services.replies import (
    BotReply,
    bot_reply_record,
    conversation_agent_assign,
    conversation_relevance_note,
)

__all__ = [
    "DELIVERY_TASK",
    "LEAD_FIELDS",
    "BotReply",
    "InboundBatch",
    "InboundMessage",
    "InboundRecord",
    "InboundStoring",
    "bot_reply_deliver",
    "bot_reply_record",
    "business_message_record",
    "contact_erase",
    "contact_language_set",
    "contact_lead_fields_fill",
    "contact_update",
    "conversation_agent_assign",
    "conversation_assign",
    "conversation_close",
    "conversation_handoff",
    "conversation_mark_read",
    "conversation_relevance_note",
    "conversation_return_to_bot",
    "durability_position",
    "durability_wait",
    "inbound_message_record",
    "inbound_messages_prepare",
    "inbound_messages_record",
    "inbound_messages_send",
    "lead_field_open",
    "message_command_assign",
    "message_delivery_ack",
    "message_is_sendable",
    "message_mark_failed",
    "message_status_update",
    "message_transcript_set",
    "opt_in_requested",
    "opt_out_requested",
    "staff_message_send",
]
