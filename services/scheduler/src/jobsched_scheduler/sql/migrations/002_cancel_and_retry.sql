-- A running job asked to stop: its runner kills it, and its finish reads `cancelled`.
ALTER TABLE jobs ADD COLUMN cancel_requested BOOLEAN NOT NULL DEFAULT false;

-- A failed attempt with attempts left goes back to the queue, not before this time.
ALTER TABLE jobs ADD COLUMN run_after TIMESTAMPTZ;

-- Exponential backoff with jitter: 1 s, 2 s, 4 s ... up to 5 minutes, times 0.5 to 1.
CREATE FUNCTION jobsched_retry_at(attempt INTEGER) RETURNS TIMESTAMPTZ
LANGUAGE sql VOLATILE AS $$
    SELECT now() + make_interval(
        secs => least(300, power(2, greatest(attempt - 1, 0))) * (0.5 + random() / 2))
$$;
