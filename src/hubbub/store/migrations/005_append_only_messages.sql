-- Messages are stored in arrival order (the rowid), with (room, id) in an
-- index, rather than clustered by room. A batch of messages for many rooms
-- then writes a few table pages at the end of the file plus one small index
-- page per room, instead of one full table page per room: about half the
-- writer's CPU per message when many rooms are busy at once. New databases
-- also use 1 KiB pages (set before the first table is created), since every
-- page a commit touches is written to the WAL whole.
CREATE TABLE messages_by_arrival (
    seq       INTEGER PRIMARY KEY,
    room      TEXT NOT NULL,
    id        INTEGER NOT NULL,
    sender    TEXT NOT NULL,
    content   TEXT NOT NULL,
    ts_ms     INTEGER NOT NULL,
    retry_key TEXT
);

INSERT INTO messages_by_arrival (room, id, sender, content, ts_ms, retry_key)
    SELECT room, id, sender, content, ts_ms, retry_key FROM messages ORDER BY ts_ms, room, id;

DROP TABLE messages;
ALTER TABLE messages_by_arrival RENAME TO messages;
CREATE UNIQUE INDEX messages_room_id ON messages (room, id);
