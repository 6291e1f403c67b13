-- The original daemon's two tables, created only when absent so that an existing
-- database of the original is adopted as it is, then the columns we add.
CREATE TABLE IF NOT EXISTS jobs (
    id SERIAL PRIMARY KEY,
    name VARCHAR(255) NOT NULL UNIQUE,
    command TEXT NOT NULL,
    status VARCHAR(50) DEFAULT 'queued',
    last_run TIMESTAMPTZ,
    created_at TIMESTAMPTZ DEFAULT CURRENT_TIMESTAMP,
    updated_at TIMESTAMPTZ DEFAULT CURRENT_TIMESTAMP
);

CREATE TABLE IF NOT EXISTS scheduler_config (
    id SERIAL PRIMARY KEY,
    key VARCHAR(255) NOT NULL UNIQUE,
    value TEXT NOT NULL,
    updated_at TIMESTAMPTZ DEFAULT CURRENT_TIMESTAMP
);

INSERT INTO scheduler_config (key, value) VALUES ('max_concurrent_jobs', '2')
ON CONFLICT (key) DO NOTHING;

ALTER TABLE jobs
    ADD COLUMN IF NOT EXISTS attempt INTEGER NOT NULL DEFAULT 0,
    ADD COLUMN IF NOT EXISTS max_attempts INTEGER NOT NULL DEFAULT 1,
    ADD COLUMN IF NOT EXISTS timeout_seconds INTEGER,
    ADD COLUMN IF NOT EXISTS runner_id TEXT,
    ADD COLUMN IF NOT EXISTS lease_expires_at TIMESTAMPTZ,
    ADD COLUMN IF NOT EXISTS started_at TIMESTAMPTZ,
    ADD COLUMN IF NOT EXISTS finished_at TIMESTAMPTZ,
    ADD COLUMN IF NOT EXISTS exit_code INTEGER,
    ADD COLUMN IF NOT EXISTS reason TEXT;

-- NOT VALID: enforced for every new or changed row, without rejecting old data.
ALTER TABLE jobs ADD CONSTRAINT jobs_status_known
    CHECK (status IN ('queued', 'running', 'completed', 'failed', 'cancelled')) NOT VALID;

-- One row per attempt: who ran it, how it ended, what it printed.
CREATE TABLE job_attempts (
    job_id INTEGER NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
    attempt INTEGER NOT NULL,
    runner_id TEXT NOT NULL,
    claimed_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    started_at TIMESTAMPTZ,
    finished_at TIMESTAMPTZ,
    exit_code INTEGER,
    reason TEXT,
    output TEXT NOT NULL DEFAULT '',
    output_truncated BOOLEAN NOT NULL DEFAULT false,
    PRIMARY KEY (job_id, attempt)
);

-- Listing newest first, whole table or one status; the hot statuses stay small.
CREATE INDEX jobs_status_id_idx ON jobs (status, id);
CREATE INDEX jobs_queued_idx ON jobs (id) WHERE status = 'queued';
CREATE INDEX jobs_running_lease_idx ON jobs (lease_expires_at) WHERE status = 'running';

-- Every status change, and every insert (also by hand with SQL), is announced on
-- one channel: schedulers wake their dispatch loop and feed event watchers from it.
-- A statement trigger sends one notification per 200 rows, not one per row.
CREATE FUNCTION jobsched_notify_inserted() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    chunk TEXT;
BEGIN
    FOR chunk IN
        SELECT json_agg(json_build_array(id, status, attempt))::text
        FROM (SELECT id, status, attempt, (row_number() OVER () - 1) / 200 AS part
              FROM new_rows) r
        GROUP BY part
    LOOP
        PERFORM pg_notify('jobsched_events', chunk);
    END LOOP;
    RETURN NULL;
END $$;

CREATE FUNCTION jobsched_notify_changed() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    chunk TEXT;
BEGIN
    FOR chunk IN
        SELECT json_agg(json_build_array(id, status, attempt))::text
        FROM (SELECT n.id, n.status, n.attempt, (row_number() OVER () - 1) / 200 AS part
              FROM new_rows n JOIN old_rows o USING (id)
              WHERE n.status IS DISTINCT FROM o.status OR n.attempt <> o.attempt) r
        GROUP BY part
    LOOP
        PERFORM pg_notify('jobsched_events', chunk);
    END LOOP;
    RETURN NULL;
END $$;

CREATE FUNCTION jobsched_notify_config() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('jobsched_events', '"config"');
    RETURN NULL;
END $$;

CREATE TRIGGER jobs_notify_inserted AFTER INSERT ON jobs
    REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION jobsched_notify_inserted();

CREATE TRIGGER jobs_notify_changed AFTER UPDATE ON jobs
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION jobsched_notify_changed();

CREATE TRIGGER scheduler_config_notify AFTER INSERT OR UPDATE ON scheduler_config
    FOR EACH STATEMENT EXECUTE FUNCTION jobsched_notify_config();
