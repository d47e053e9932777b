"""eva_inbound_messages: find each item's contact and conversation by index, item by item.

Version 1 (migration 0003) joined the batch's items, contacts and conversations as sets. Its
statements are planned once per session (``force_generic_plan``), without knowing how many items
a call brings, so PostgreSQL picked nested loops over whole sets: a read of fifty messages
compared every item with every other and every contact of the tenant (2,500 comparisons per
join, about 3 ms of the function's 6). Here each item looks its contact and conversation up
through the unique indexes (and the alias index), which costs the same per item whatever the
batch size. Behaviour is unchanged; the rest of the function is version 1's.
"""

from importlib import import_module

from django.db import migrations

_V1 = import_module("apps.conversations.migrations.0003_inbound_messages_function").CREATE
# Back to version 1 (its CREATE TYPE stays: the type is unchanged).
REVERSE = "CREATE OR REPLACE FUNCTION" + _V1.split("CREATE FUNCTION", 1)[1]

_PLANNING = "SET plan_cache_mode = force_generic_plan\n"
_SEQSCAN_OFF = """\
-- Every row this function reads it finds by key. On a small tenant PostgreSQL would rather read
-- the whole contacts table than its alias index, and test each alias array of it for every
-- item: 35 microseconds an item at 50 contacts, ten times that at 500.
SET enable_seqscan = off
"""
_LOOP = "    FOR attempt IN 1..2 LOOP\n"
_AFTER_MAPPING = "        EXIT WHEN NOT EXISTS"
_MAPPING = r"""        -- Items not stored yet, once per external id (the first wins; redeliveries stop
        -- here), each with its contact (the oldest when its id is also another contact's
        -- alias) and its conversation, locked like every write that depends on its state.
        -- Lookups go item by item through the indexes (see this migration's docstring).
        v_fresh := ARRAY(
            SELECT ROW(f.ord, f.external_id, f.wa_id, f.phone, f.name, f.simulated, f.channel,
                       f.channel_ref, f.kind, f.text, f.media, f.sent_at, f.agent_id, f.preview,
                       f.consent, who.id, conv.id)::eva_inbound_item
            FROM (SELECT DISTINCT ON (i.external_id) i.*
                  FROM unnest(v_items) AS i
                  WHERE NOT EXISTS (SELECT 1 FROM conversations_message AS m
                                    WHERE m.external_id = i.external_id)
                  ORDER BY i.external_id, i.ord) AS f
            LEFT JOIN LATERAL (
                SELECT c.id FROM conversations_contact AS c WHERE c.wa_id = f.wa_id
                UNION ALL
                SELECT c.id FROM conversations_contact AS c
                WHERE c.wa_ids @> ARRAY[f.wa_id]::varchar[]
                ORDER BY 1 LIMIT 1) AS who ON true
            LEFT JOIN LATERAL (
                SELECT c.id FROM conversations_conversation AS c
                WHERE c.contact_id = who.id AND c.channel = f.channel
                  AND c.channel_ref = f.channel_ref
                FOR UPDATE) AS conv ON true
            ORDER BY f.ord);
"""


def _version_2() -> str:
    """Version 1's text with the planner setting added and the mapping statement replaced."""
    before_loop, rest = REVERSE.split(_LOOP, 1)
    _old_mapping, after_mapping = rest.split(_AFTER_MAPPING, 1)
    assert before_loop.count(_PLANNING) == 1, "version 1's text is not the one this expects"
    before_loop = before_loop.replace(_PLANNING, _PLANNING + _SEQSCAN_OFF)
    return "".join((before_loop, _LOOP, _MAPPING, _AFTER_MAPPING, after_mapping))


CREATE = _version_2()


class Migration(migrations.Migration):
    dependencies = [("conversations", "0004_contact_alias_index_without_pending_list")]

    operations = [migrations.RunSQL(CREATE, REVERSE)]
