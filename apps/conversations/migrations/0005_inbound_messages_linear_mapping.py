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

# Version 2 up to the writes; from there on, version 1's text.
_HEAD = r"""
CREATE OR REPLACE FUNCTION eva_inbound_messages(p_items jsonb, p_now timestamptz)
RETURNS TABLE (item_external_id text, message_id bigint, message_conversation_id bigint)
LANGUAGE plpgsql VOLATILE
-- Planned once per session: re-planning these statements for each call (PostgreSQL's first
-- choice for statements with parameters) costs more than running them.
SET plan_cache_mode = force_generic_plan
-- Every row this function reads it finds by key. On a small tenant PostgreSQL would rather read
-- the whole contacts table than its alias index, and test each alias array of it for every
-- item: 35 microseconds an item at 50 contacts, ten times that at 500.
SET enable_seqscan = off
AS $fn$
#variable_conflict use_column
DECLARE
    v_items eva_inbound_item[];
    v_fresh eva_inbound_item[];
BEGIN
    v_items := ARRAY(SELECT i FROM jsonb_populate_recordset(NULL::eva_inbound_item, p_items) AS i
                     ORDER BY i.ord);

    -- Serialize concurrent first messages of the same contacts (the same transaction-scoped
    -- advisory locks as services._contact_for), taken in one order so that two batches
    -- locking overlapping sets cannot deadlock.
    PERFORM pg_advisory_xact_lock(k.lock_key)
    FROM (SELECT DISTINCT hashtext('contact:' || i.wa_id) AS lock_key
          FROM unnest(v_items) AS i ORDER BY 1) AS k;

    FOR attempt IN 1..2 LOOP
        -- Items not stored yet, once per external id (the first wins; redeliveries stop
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
        EXIT WHEN NOT EXISTS (SELECT 1 FROM unnest(v_fresh) AS f
                              WHERE f.conversation_id IS NULL);
        IF attempt = 2 THEN
            RAISE EXCEPTION 'inbound messages left without a conversation';
        END IF;
"""
_WRITES = _V1.split(
    "RAISE EXCEPTION 'inbound messages left without a conversation';\n        END IF;\n", 1
)[1]
CREATE = "".join((_HEAD, _WRITES))

# Back to version 1 (its CREATE TYPE stays: the type is unchanged).
REVERSE = "CREATE OR REPLACE FUNCTION" + _V1.split("CREATE FUNCTION", 1)[1]


class Migration(migrations.Migration):
    dependencies = [("conversations", "0004_contact_alias_index_without_pending_list")]

    operations = [migrations.RunSQL(CREATE, REVERSE)]
