-- A running job asked to stop: its runner kills it, and its finish reads `cancelled`.
ALTER TABLE jobs ADD COLUMN cancel_requested BOOLEAN NOT NULL DEFAULT false;
