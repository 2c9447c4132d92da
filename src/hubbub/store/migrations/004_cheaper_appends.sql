-- Each of these indexes cost a page write per message in a place of its own
-- (a room's retry keys, the newest timestamps): together more than half of
-- the writer's time per message. Retry keys are now remembered in memory by
-- the writer (loaded from messages.retry_key at start), and retention by age
-- walks each room's primary key from its oldest message instead.
DROP TABLE retries;
DROP INDEX messages_age;
