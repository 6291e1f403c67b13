-- The audit log: every write through the API, by whom and from where, written in the
-- write's own transaction (see audit.py). Read newest first by id (keyset paged).

CREATE TABLE audit (
    id BIGSERIAL PRIMARY KEY,
    at TIMESTAMPTZ NOT NULL DEFAULT now(),
    -- The API token's name, or 'local' on a tokenless loopback scheduler.
    actor TEXT NOT NULL,
    -- e.g. 'job.create', 'jobs.create', 'config.update', 'limit.set', 'schedule.delete'.
    action TEXT NOT NULL,
    -- e.g. 'job/42', 'jobs/7-1006', 'config', 'limit/tenant-a', 'schedule/nightly'.
    target TEXT NOT NULL,
    before JSONB,
    after JSONB,
    -- The caller's address as the gateway (or, called directly, the scheduler) saw it.
    remote TEXT NOT NULL DEFAULT ''
);
