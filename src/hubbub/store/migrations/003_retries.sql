-- Retry keys live apart from the messages, so that retention removing a
-- message cannot let its retry be stored a second time within the window.
CREATE TABLE retries (
    room      TEXT NOT NULL,
    sender    TEXT NOT NULL,
    retry_key TEXT NOT NULL,
    id        INTEGER NOT NULL,
    ts_ms     INTEGER NOT NULL,
    PRIMARY KEY (room, sender, retry_key)
) WITHOUT ROWID;

CREATE INDEX retries_age ON retries (ts_ms);

INSERT INTO retries (room, sender, retry_key, id, ts_ms)
    SELECT room, sender, retry_key, max(id), max(ts_ms) FROM messages
    WHERE retry_key IS NOT NULL GROUP BY room, sender, retry_key;

DROP INDEX messages_retry;
