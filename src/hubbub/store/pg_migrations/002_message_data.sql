-- A message's structured payload (protocol 1.1), as the JSON text it was
-- given in (not jsonb, which would reorder keys and drop duplicates: `data`
-- is delivered unchanged); NULL for a message without one. Adding a nullable
-- column without a default rewrites no row.
ALTER TABLE messages ADD COLUMN data text;

-- hubbub_append of 001, with each message's data (p_data) and the first
-- message's data for a retry. See 001 for how it orders and locks.
CREATE FUNCTION hubbub_append(
    p_rooms text[],
    p_senders text[],
    p_contents text[],
    p_ts bigint[],
    p_keys text[],
    p_data text[],
    p_window bigint
) RETURNS TABLE (
    message_id bigint, duplicate boolean, first_ts bigint, first_content text, first_data text
)
LANGUAGE plpgsql AS $$
DECLARE
    n integer := cardinality(p_rooms);
    ids bigint[] := array_fill(0::bigint, ARRAY[n]);
    dups boolean[] := array_fill(false, ARRAY[n]);
    firsts bigint[] := p_ts;
    i integer;
    found_id bigint;
    found_ts bigint;
    room_name text;
    fresh bigint;
    top bigint;
    counted_rooms text[] := '{}';
    tops bigint[] := '{}';
BEGIN
    FOR i IN
        SELECT k.ord FROM unnest(p_rooms, p_senders, p_keys) WITH ORDINALITY
            AS k (room, sender, retry_key, ord)
        WHERE k.retry_key IS NOT NULL
        ORDER BY k.room, k.sender, k.retry_key, k.ord
    LOOP
        INSERT INTO retries AS r (room, sender, retry_key, id, ts_ms)
        VALUES (p_rooms[i], p_senders[i], p_keys[i], -i, p_ts[i])
        ON CONFLICT (room, sender, retry_key) DO UPDATE
            SET id = excluded.id, ts_ms = excluded.ts_ms
            WHERE excluded.ts_ms - r.ts_ms >= p_window;
        IF NOT FOUND THEN
            SELECT r.id, r.ts_ms INTO found_id, found_ts FROM retries AS r
            WHERE r.room = p_rooms[i] AND r.sender = p_senders[i] AND r.retry_key = p_keys[i];
            dups[i] := true;
            ids[i] := found_id;
            firsts[i] := found_ts;
        END IF;
    END LOOP;

    FOR room_name, fresh IN
        SELECT k.room, count(*) FROM unnest(p_rooms) WITH ORDINALITY AS k (room, ord)
        WHERE NOT dups[k.ord::integer]
        GROUP BY k.room ORDER BY k.room
    LOOP
        INSERT INTO rooms AS r (name, last_id) VALUES (room_name, fresh)
        ON CONFLICT (name) DO UPDATE SET last_id = r.last_id + excluded.last_id
        RETURNING r.last_id INTO top;
        counted_rooms := counted_rooms || room_name;
        tops := tops || top;
    END LOOP;

    FOR i, found_id IN
        SELECT k.ord, t.top - count(*) OVER per_room + row_number() OVER (per_room ORDER BY k.ord)
        FROM unnest(p_rooms) WITH ORDINALITY AS k (room, ord)
        JOIN unnest(counted_rooms, tops) AS t (room, top) ON t.room = k.room
        WHERE NOT dups[k.ord::integer]
        WINDOW per_room AS (PARTITION BY k.room)
    LOOP
        ids[i] := found_id;
    END LOOP;

    INSERT INTO messages (room, id, sender, content, ts_ms, data)
    SELECT p_rooms[j], ids[j], p_senders[j], p_contents[j], p_ts[j], p_data[j]
    FROM generate_series(1, n) AS j
    WHERE NOT dups[j];

    UPDATE retries AS r SET id = ids[k.ord::integer]
    FROM unnest(p_rooms, p_senders, p_keys) WITH ORDINALITY AS k (room, sender, retry_key, ord)
    WHERE k.retry_key IS NOT NULL AND NOT dups[k.ord::integer]
        AND r.room = k.room AND r.sender = k.sender AND r.retry_key = k.retry_key
        AND r.id = -k.ord;

    -- A retry of a message earlier in this batch: its first message's id.
    FOR i IN 1 .. n LOOP
        IF dups[i] AND ids[i] < 0 THEN
            ids[i] := ids[(-ids[i])::integer];
        END IF;
    END LOOP;

    RETURN QUERY
    SELECT ids[j], dups[j], firsts[j], m.content, m.data
    FROM generate_series(1, n) AS j
    LEFT JOIN messages AS m ON dups[j] AND m.room = p_rooms[j] AND m.id = ids[j]
    ORDER BY j;
END
$$;

-- The six-argument form of 001, for nodes not yet upgraded in a rolling
-- upgrade: their messages have no data.
CREATE OR REPLACE FUNCTION hubbub_append(
    p_rooms text[],
    p_senders text[],
    p_contents text[],
    p_ts bigint[],
    p_keys text[],
    p_window bigint
) RETURNS TABLE (message_id bigint, duplicate boolean, first_ts bigint, first_content text)
LANGUAGE sql AS $$
    SELECT a.message_id, a.duplicate, a.first_ts, a.first_content
    FROM hubbub_append(
        p_rooms, p_senders, p_contents, p_ts, p_keys,
        array_fill(NULL::text, ARRAY[cardinality(p_rooms)]), p_window
    ) AS a
$$;
