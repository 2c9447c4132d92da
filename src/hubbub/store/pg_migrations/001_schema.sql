-- Each room's counter: the last id handed out. An append updates it in the
-- transaction that inserts the messages, so the row lock orders the commits
-- of every node: ids are gap-free in commit order, and never reused after
-- retention removed a room's messages.
CREATE TABLE rooms (
    name    text PRIMARY KEY,
    last_id bigint NOT NULL
);

CREATE TABLE messages (
    room    text NOT NULL,
    id      bigint NOT NULL,
    sender  text NOT NULL,
    content text NOT NULL,
    ts_ms   bigint NOT NULL,
    PRIMARY KEY (room, id)
);

-- The first message of each retry key (one user's `ref` in one room), apart
-- from the messages so that retention cannot let a retry be stored twice.
-- Shared by every node, so a retry sent to another node is recognised.
CREATE TABLE retries (
    room      text NOT NULL,
    sender    text NOT NULL,
    retry_key text NOT NULL,
    id        bigint NOT NULL,
    ts_ms     bigint NOT NULL,
    PRIMARY KEY (room, sender, retry_key)
);

-- One row rewritten by the health probe: a write, so a read-only or full
-- database is told apart from a healthy one.
CREATE TABLE probe (
    id integer PRIMARY KEY CHECK (id = 1),
    at bigint NOT NULL
);

-- Stores a batch of messages in one statement, so one transaction and one
-- round trip, and answers one row per message in the order given: its id,
-- or for a retry within `p_window` ms of its first message that message's
-- id, timestamp and content.
--
-- Locks are taken in one order by every caller, so that batches from
-- several nodes never wait on each other in a cycle: retry keys sorted, then
-- room counters sorted. A retry key is claimed (inserted with a placeholder
-- id, -ordinal) before any id is handed out, so of two nodes storing the same
-- retry at once, the second waits for the first's commit and then sees it.
CREATE FUNCTION hubbub_append(
    p_rooms text[],
    p_senders text[],
    p_contents text[],
    p_ts bigint[],
    p_keys text[],
    p_window bigint
) RETURNS TABLE (message_id bigint, duplicate boolean, first_ts bigint, first_content text)
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

    INSERT INTO messages (room, id, sender, content, ts_ms)
    SELECT p_rooms[j], ids[j], p_senders[j], p_contents[j], p_ts[j]
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
    SELECT ids[j], dups[j], firsts[j], m.content
    FROM generate_series(1, n) AS j
    LEFT JOIN messages AS m ON dups[j] AND m.room = p_rooms[j] AND m.id = ids[j]
    ORDER BY j;
END
$$;
