"""eva_inbound_messages(items, now): store a batch of customer messages in one round trip.

The WhatsApp consumer must keep up with a thousand messages a second on two cores. Stored from
Python, a batch costs nine dependent statements (locks, contacts, conversations, messages, the
conversations' counters), each a round trip to PostgreSQL that costs more than the work it
does; here they run inside the server, called once (apps.conversations.services
``inbound_messages_record``, which prepares each item: consent words, preview, name cut).

Column lists follow the models of this app: a new NOT NULL column without a database default
on Contact, Conversation or Message needs a new version of this function (the inbound tests
fail until it has one).
"""

from django.db import migrations

CREATE = r"""
CREATE TYPE eva_inbound_item AS (
    ord integer,
    external_id text,
    wa_id text,
    phone text,
    name text,
    simulated boolean,
    channel text,
    channel_ref text,
    kind text,
    text text,
    media jsonb,
    sent_at timestamptz,
    agent_id bigint,
    preview text,
    consent text,          -- 'out' (opt-out words), 'in' (opt-in words) or ''
    contact_id bigint,     -- filled in by the function
    conversation_id bigint -- filled in by the function
);

CREATE FUNCTION eva_inbound_messages(p_items jsonb, p_now timestamptz)
RETURNS TABLE (item_external_id text, message_id bigint, message_conversation_id bigint)
LANGUAGE plpgsql VOLATILE
-- Planned once per session: re-planning these statements for each call (PostgreSQL's first
-- choice for statements with parameters) costs more than running them.
SET plan_cache_mode = force_generic_plan
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
        -- here), with their contact (the oldest when an id is also another contact's alias)
        -- and their conversation, locked like every write that depends on its state.
        v_fresh := ARRAY(
            WITH fresh AS (
                SELECT DISTINCT ON (i.external_id) i AS item, i.ord, i.wa_id, i.channel,
                       i.channel_ref
                FROM unnest(v_items) AS i
                WHERE NOT EXISTS (SELECT 1 FROM conversations_message AS m
                                  WHERE m.external_id = i.external_id)
                ORDER BY i.external_id, i.ord),
            who AS (
                SELECT DISTINCT ON (w.wa_id) w.wa_id, c.id AS contact_id
                FROM (SELECT DISTINCT wa_id FROM fresh) AS w
                JOIN conversations_contact AS c
                  ON c.wa_id = w.wa_id OR c.wa_ids @> ARRAY[w.wa_id]::varchar[]
                ORDER BY w.wa_id, c.id),
            conv AS (
                SELECT c.id, c.contact_id, c.channel, c.channel_ref
                FROM conversations_conversation AS c
                WHERE (c.contact_id, c.channel, c.channel_ref) IN
                      (SELECT who.contact_id, fresh.channel, fresh.channel_ref
                       FROM fresh JOIN who ON who.wa_id = fresh.wa_id)
                FOR UPDATE)
            SELECT jsonb_populate_record(f.item, jsonb_build_object(
                       'contact_id', who.contact_id, 'conversation_id', conv.id))
            FROM fresh AS f
            LEFT JOIN who ON who.wa_id = f.wa_id
            LEFT JOIN conv ON conv.contact_id = who.contact_id AND conv.channel = f.channel
                          AND conv.channel_ref = f.channel_ref
            ORDER BY f.ord);
        EXIT WHEN NOT EXISTS (SELECT 1 FROM unnest(v_fresh) AS f
                              WHERE f.conversation_id IS NULL);
        IF attempt = 2 THEN
            RAISE EXCEPTION 'inbound messages left without a conversation';
        END IF;

        -- First contact: create the contacts and conversations missing, then map again.
        INSERT INTO conversations_contact (
            wa_id, wa_ids, phone, name, language, email, company, interest, budget, notes,
            stage, is_simulated, opted_out, opted_out_at, first_contact_at, last_contact_at,
            created_at, updated_at)
        SELECT DISTINCT ON (f.wa_id)
            f.wa_id, '{}', f.phone, f.name, '', '', '', '', '', '',
            'new', f.simulated, false, NULL, p_now, p_now,
            p_now, p_now
        FROM unnest(v_fresh) AS f
        WHERE f.contact_id IS NULL
        ORDER BY f.wa_id, f.ord
        ON CONFLICT (wa_id) DO NOTHING;

        INSERT INTO conversations_conversation (
            contact_id, channel, channel_ref, agent_id, mode, human_until, handoff_reason,
            handoff_at, assigned_to_id, unread_count, low_relevance_turns, answered_through_id,
            last_message_at, last_message_preview, created_at)
        SELECT DISTINCT ON (1, f.channel, f.channel_ref)
            coalesce(f.contact_id, c.id), f.channel, f.channel_ref, f.agent_id, 'bot', NULL, '',
            NULL, NULL, 0, 0, 0,
            NULL, '', p_now
        FROM unnest(v_fresh) AS f
        LEFT JOIN conversations_contact AS c ON f.contact_id IS NULL AND c.wa_id = f.wa_id
        WHERE f.conversation_id IS NULL
        ORDER BY 1, f.channel, f.channel_ref, f.ord
        ON CONFLICT (contact_id, channel, channel_ref) DO NOTHING;
    END LOOP;

    -- One statement writes the rest: the messages in arrival order (ids grow with it; a twin
    -- inserted meanwhile by another consumer is skipped, not an error); their conversations
    -- (reopened if closed or if a business-phone hold expired, bound to the simulator's agent,
    -- one unread more per new message, the newest message's preview); their contacts (last
    -- contact now, a phone or name learnt later filled in, and the last opt-out or opt-in word
    -- of the new messages applied). Returns the messages it stored.
    RETURN QUERY
    WITH f AS (SELECT * FROM unnest(v_fresh)),
    ins AS (
        INSERT INTO conversations_message (
            conversation_id, direction, sender, kind, text, transcript, transcript_language,
            media, external_id, command_event_id, status, error, author_id, provider, model,
            latency_ms, tokens_in, tokens_out, usage_id, citations, is_handoff_notice,
            replied_to_ids, sent_at, created_at)
        SELECT f.conversation_id, 'in', 'customer', f.kind, f.text, '', '',
            f.media, f.external_id, NULL, 'received', '', NULL, '', '',
            NULL, NULL, NULL, NULL, '[]'::jsonb, false,
            '{}', f.sent_at, p_now
        FROM f ORDER BY f.ord
        ON CONFLICT (external_id) DO NOTHING
        RETURNING id, external_id),
    added AS (SELECT f.*, ins.id AS new_id FROM f LEFT JOIN ins ON ins.external_id = f.external_id),
    conversations AS (
        UPDATE conversations_conversation AS c SET
            mode = CASE WHEN c.mode = 'closed' OR (c.mode = 'human' AND c.human_until <= p_now)
                        THEN 'bot' ELSE c.mode END,
            human_until = CASE WHEN c.mode = 'closed'
                                    OR (c.mode = 'human' AND c.human_until <= p_now)
                               THEN NULL ELSE c.human_until END,
            agent_id = coalesce(x.agent_id, c.agent_id),
            unread_count = c.unread_count + x.added,
            last_message_at = CASE WHEN x.added > 0 THEN p_now ELSE c.last_message_at END,
            last_message_preview = coalesce(x.preview, c.last_message_preview)
        FROM (SELECT a.conversation_id, count(a.new_id) AS added,
                     (array_agg(a.preview ORDER BY a.ord DESC)
                         FILTER (WHERE a.new_id IS NOT NULL))[1] AS preview,
                     (array_agg(a.agent_id ORDER BY a.ord DESC)
                         FILTER (WHERE a.agent_id IS NOT NULL))[1] AS agent_id
              FROM added AS a GROUP BY a.conversation_id) AS x
        WHERE c.id = x.conversation_id),
    contacts AS (
        UPDATE conversations_contact AS c SET
            last_contact_at = p_now,
            updated_at = p_now,
            phone = CASE WHEN c.phone = '' AND x.phone IS NOT NULL THEN x.phone ELSE c.phone END,
            name = CASE WHEN c.name = '' AND x.name IS NOT NULL THEN x.name ELSE c.name END,
            opted_out = CASE x.consent WHEN 'out' THEN true WHEN 'in' THEN false
                                       ELSE c.opted_out END,
            opted_out_at = CASE WHEN x.consent = 'out' AND NOT c.opted_out THEN p_now
                                WHEN x.consent = 'in' THEN NULL
                                ELSE c.opted_out_at END
        FROM (SELECT a.contact_id,
                     (array_agg(a.phone ORDER BY a.ord) FILTER (WHERE a.phone <> ''))[1] AS phone,
                     (array_agg(a.name ORDER BY a.ord) FILTER (WHERE a.name <> ''))[1] AS name,
                     (array_agg(a.consent ORDER BY a.ord DESC)
                         FILTER (WHERE a.new_id IS NOT NULL AND a.consent <> ''))[1] AS consent
              FROM added AS a GROUP BY a.contact_id) AS x
        WHERE c.id = x.contact_id)
    SELECT a.external_id, a.new_id, a.conversation_id FROM added AS a WHERE a.new_id IS NOT NULL;
END
$fn$;
"""

DROP = """
DROP FUNCTION IF EXISTS eva_inbound_messages(jsonb, timestamptz);
DROP TYPE IF EXISTS eva_inbound_item;
"""


class Migration(migrations.Migration):
    dependencies = [("conversations", "0002_handoff_notice")]

    operations = [migrations.RunSQL(CREATE, DROP)]
