-- A message's structured payload (protocol 1.1), as JSON text; NULL for a
-- message without one. Adding a nullable column rewrites no row.
ALTER TABLE messages ADD COLUMN data TEXT;
