-- Rooms remember the last id they handed out, so ids are never reused even
-- after retention removed every message of a room.
CREATE TABLE rooms (
    name    TEXT PRIMARY KEY,
    last_id INTEGER NOT NULL
) WITHOUT ROWID;

CREATE TABLE messages (
    room      TEXT NOT NULL,
    id        INTEGER NOT NULL,
    sender    TEXT NOT NULL,
    content   TEXT NOT NULL,
    ts_ms     INTEGER NOT NULL,
    retry_key TEXT,
    PRIMARY KEY (room, id)
) WITHOUT ROWID;

CREATE INDEX messages_retry ON messages (room, sender, retry_key) WHERE retry_key IS NOT NULL;
CREATE INDEX messages_age ON messages (ts_ms);
