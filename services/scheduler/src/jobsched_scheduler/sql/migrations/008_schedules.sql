-- Recurring schedules: each makes a job named "{name}@{fire time}" at its fire times.
-- The fire loop of every scheduler picks the due rows with FOR UPDATE SKIP LOCKED, so a
-- fire time is handled by one of them; the unique job name makes sure of it.
CREATE TABLE schedules (
    name TEXT PRIMARY KEY,
    command TEXT NOT NULL,
    cron TEXT,
    every_seconds INTEGER,
    timezone TEXT NOT NULL DEFAULT 'UTC',
    overlap TEXT NOT NULL DEFAULT 'skip',
    catchup_window_seconds INTEGER NOT NULL DEFAULT 60,
    paused BOOLEAN NOT NULL DEFAULT false,
    priority SMALLINT NOT NULL DEFAULT 0,
    max_attempts INTEGER NOT NULL DEFAULT 1,
    timeout_seconds INTEGER,
    -- NULL while paused; a row inserted by hand with NULL gets one from the fire loop.
    next_run_at TIMESTAMPTZ,
    last_run_at TIMESTAMPTZ,
    -- No foreign key: deleting old jobs must not be held up by the schedule that made them.
    last_job_id INTEGER,
    skipped_count BIGINT NOT NULL DEFAULT 0,
    created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    -- The job names leave room for "@" and a time within the jobs' 255 characters.
    CONSTRAINT schedules_name_valid
        CHECK (char_length(name) BETWEEN 1 AND 200 AND position('@' IN name) = 0),
    CONSTRAINT schedules_one_rule CHECK ((cron IS NULL) <> (every_seconds IS NULL)),
    CONSTRAINT schedules_every_seconds_valid CHECK (every_seconds BETWEEN 1 AND 366 * 86400),
    CONSTRAINT schedules_overlap_known CHECK (overlap IN ('skip', 'allow')),
    CONSTRAINT schedules_catchup_valid CHECK (catchup_window_seconds BETWEEN 0 AND 7 * 86400),
    CONSTRAINT schedules_priority_valid CHECK (priority BETWEEN -100 AND 100),
    CONSTRAINT schedules_max_attempts_valid CHECK (max_attempts >= 1),
    CONSTRAINT schedules_timeout_valid CHECK (timeout_seconds >= 1),
    CONSTRAINT schedules_paused_not_due CHECK (NOT paused OR next_run_at IS NULL)
);

-- The fire loop's pick and its wake-up time: the earliest next run of a live schedule.
CREATE INDEX schedules_due_idx ON schedules (next_run_at NULLS FIRST) WHERE NOT paused;

-- Any change, by the API or by hand, wakes every scheduler's fire loop: the earliest
-- next run may have moved. PostgreSQL folds equal notifications of one transaction.
CREATE FUNCTION jobsched_notify_schedules() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('jobsched_events', '"schedules"');
    RETURN NULL;
END $$;

CREATE TRIGGER schedules_notify AFTER INSERT OR UPDATE OR DELETE ON schedules
    FOR EACH STATEMENT EXECUTE FUNCTION jobsched_notify_schedules();
