-- One row rewritten by the health probe: a write that needs space on the disk,
-- so /healthz tells a full or read-only disk from a healthy one.
CREATE TABLE probe (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    at INTEGER NOT NULL
);
