-- Concurrency keys: a limit per key, nested inside the global limit, and a fair turn
-- across keys (start-time fair queuing; see docs/architecture.md, "The claim").

ALTER TABLE jobs
    ADD COLUMN concurrency_key TEXT,
    -- The job's turn among the keys: the claim's order is priority, then turn, then id.
    ADD COLUMN fair_seq BIGINT NOT NULL DEFAULT 0;
ALTER TABLE jobs ADD CONSTRAINT jobs_concurrency_key_length
    CHECK (length(concurrency_key) BETWEEN 1 AND 255) NOT VALID;

-- A schedule passes its key on to the jobs it makes.
ALTER TABLE schedules ADD COLUMN concurrency_key TEXT
    CHECK (length(concurrency_key) BETWEEN 1 AND 255);

CREATE TABLE concurrency_limits (
    key TEXT PRIMARY KEY CHECK (length(key) BETWEEN 1 AND 255),
    max_concurrent_jobs INTEGER CHECK (max_concurrent_jobs BETWEEN 1 AND 10000),
    paused BOOLEAN NOT NULL DEFAULT false,
    updated_at TIMESTAMPTZ NOT NULL DEFAULT now()
);

-- A limit set, changed or removed wakes every scheduler, as the global limit does.
CREATE TRIGGER concurrency_limits_notify AFTER INSERT OR UPDATE OR DELETE ON concurrency_limits
    FOR EACH STATEMENT EXECUTE FUNCTION jobsched_notify_config();

-- The virtual time of fair queuing: the highest turn the claim has taken so far.
CREATE TABLE fair_clock (
    one BOOLEAN PRIMARY KEY DEFAULT true CHECK (one),
    turn BIGINT NOT NULL
);
INSERT INTO fair_clock VALUES (true, 0);

-- The claim's order; each entry carries the job's key, so that ExplainJob counts the
-- eligible jobs ahead of one (skipping keys paused or full) from the index alone.
DROP INDEX jobs_ready_idx;
CREATE INDEX jobs_ready_idx ON jobs (priority DESC, fair_seq, id) INCLUDE (concurrency_key)
    WHERE status = 'queued' AND unmet_dependencies = 0;
-- A key's last turn among its queued jobs, and its running jobs.
-- (Jobs without a key are the key '', which no key can be: by equality, the index gives
-- their last turn in one probe, where `IS NULL` would read them all.)
CREATE INDEX jobs_key_turn_idx ON jobs (coalesce(concurrency_key, ''), fair_seq DESC)
    WHERE status = 'queued';
CREATE INDEX jobs_running_key_idx ON jobs (concurrency_key) WHERE status = 'running';

-- A new job's turn: after the last queued job of its key (jobs without a key are one
-- key), and never before the virtual time, so that a key that was idle joins the round
-- where it is now instead of going ahead of every other key for its whole backlog.
-- (Rows inserted earlier by the same statement are seen, so a batch takes turns 1, 2 ...)
-- No lock: jobs of one key inserted at once by concurrent transactions may share a turn.
-- (Index scans only: a plan made while the table looked empty would read every queued
-- row of the key for every row inserted.)
CREATE FUNCTION jobsched_next_turn(key TEXT) RETURNS BIGINT
LANGUAGE sql VOLATILE SET enable_seqscan = off SET enable_bitmapscan = off AS $$
    SELECT greatest(
        coalesce((SELECT fair_seq FROM jobs
                  WHERE status = 'queued' AND coalesce(concurrency_key, '') = coalesce(key, '')
                  ORDER BY fair_seq DESC LIMIT 1), 0),
        (SELECT turn FROM fair_clock)) + 1
$$;

CREATE OR REPLACE FUNCTION jobsched_prepare_job() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    deps RECORD;
BEGIN
    IF NEW.status IN ('queued', 'scheduled') OR NEW.status IS NULL THEN
        NEW.status := CASE WHEN NEW.run_after > now() THEN 'scheduled' ELSE 'queued' END;
        NEW.fair_seq := jobsched_next_turn(NEW.concurrency_key);
    END IF;
    IF cardinality(NEW.depends_on) > 0 THEN
        NEW.depends_on := ARRAY(SELECT DISTINCT unnest(NEW.depends_on) ORDER BY 1);
        deps := jobsched_dependency_state(NEW.depends_on);
        NEW.unmet_dependencies := deps.unmet;
        IF deps.broken_id IS NOT NULL AND NEW.status IN ('queued', 'scheduled') THEN
            NEW.status := 'cancelled';
            NEW.reason := format('dependency %s %s', deps.broken_id, deps.broken_status);
            NEW.finished_at := now();
        END IF;
    ELSE
        NEW.depends_on := NULL;
        NEW.unmet_dependencies := 0;
    END IF;
    RETURN NEW;
END $$;

-- Room left under each key's limit: 0 for a paused key or one at (or over) its limit.
CREATE VIEW concurrency_room AS
SELECT l.key,
       CASE WHEN l.paused THEN 0
            WHEN l.max_concurrent_jobs IS NULL THEN NULL
            ELSE greatest(0, l.max_concurrent_jobs - coalesce(r.running, 0)) END AS room
FROM concurrency_limits l
LEFT JOIN (SELECT concurrency_key AS key, count(*) AS running FROM jobs
           WHERE status = 'running' AND concurrency_key IS NOT NULL GROUP BY 1) r USING (key);

-- The claim of 007 with concurrency keys. Eligible: queued, due, dependencies met, the
-- scheduler not paused, its key (if any) not paused and below its limit. Order: highest
-- priority, then turn (fair_seq), then oldest. It reads up to four times the free slots
-- of eligible jobs in that order, keeps of each key no more than its room, and claims
-- the first of those; then the virtual time moves to the highest turn claimed.
DROP FUNCTION jobsched_claim(JSONB, INTEGER, DOUBLE PRECISION, INTEGER);
CREATE FUNCTION jobsched_claim(
    slots JSONB, default_limit INTEGER, lease_seconds DOUBLE PRECISION, default_timeout INTEGER
) RETURNS TABLE (
    max_concurrent INTEGER, running BIGINT, queued BIGINT, next_due TIMESTAMPTZ,
    id INTEGER, attempt INTEGER, runner_id TEXT, command TEXT, timeout_seconds INTEGER
) LANGUAGE plpgsql VOLATILE AS $$
#variable_conflict use_column
DECLARE
    blocked TEXT[];
BEGIN
    -- Serialises claims across every scheduler process, until the transaction ends.
    PERFORM pg_advisory_xact_lock(hashtext('jobsched.dispatch'));
    -- The test is one probe of jobs_scheduled_idx, and spares the UPDATE's statement
    -- triggers when nothing is due.
    IF EXISTS (SELECT 1 FROM jobs WHERE status = 'scheduled' AND jobsched_due_at(run_after) <= now())
    THEN
        UPDATE jobs SET status = 'queued', updated_at = now()
        WHERE status = 'scheduled' AND jobsched_due_at(run_after) <= now();
    END IF;
    SELECT coalesce(array_agg(r.key), '{}') INTO blocked FROM concurrency_room r WHERE r.room = 0;
    RETURN QUERY
    WITH budget AS (
        SELECT coalesce((SELECT value::integer FROM scheduler_config
                         WHERE key = 'max_concurrent_jobs'), default_limit) AS max_concurrent,
               coalesce((SELECT value = 'true' FROM scheduler_config WHERE key = 'paused'),
                        false) AS paused,
               coalesce(sum(n) FILTER (WHERE status = 'running'), 0)::bigint AS running,
               coalesce(sum(n) FILTER (WHERE status = 'queued'), 0)::bigint AS queued
        FROM job_counts WHERE status IN ('running', 'queued')
    ), wanted AS (
        SELECT CASE WHEN paused THEN 0
                    ELSE greatest(0, least(max_concurrent - running, queued,
                                           jsonb_array_length(slots))) END AS n
        FROM budget
    ), room AS MATERIALIZED (
        -- Once, not once a candidate.
        SELECT key, room FROM concurrency_room
    ), candidates AS (
        SELECT id, priority, fair_seq, concurrency_key FROM jobs
        WHERE status = 'queued' AND unmet_dependencies = 0
          AND (run_after IS NULL OR run_after <= now())
          AND (concurrency_key IS NULL OR NOT concurrency_key = ANY (blocked))
        ORDER BY priority DESC, fair_seq, id
        LIMIT (SELECT 4 * n FROM wanted)
        FOR UPDATE SKIP LOCKED
    ), within_keys AS (
        SELECT c.id, c.priority, c.fair_seq,
               row_number() OVER (PARTITION BY c.concurrency_key
                                  ORDER BY c.priority DESC, c.fair_seq, c.id) AS nth,
               r.room
        FROM candidates c LEFT JOIN room r ON r.key = c.concurrency_key
    ), picked AS (
        SELECT id, row_number() OVER (ORDER BY priority DESC, fair_seq, id) AS slot
        FROM (SELECT * FROM within_keys WHERE room IS NULL OR nth <= room
              ORDER BY priority DESC, fair_seq, id
              LIMIT (SELECT n FROM wanted)) p
    ), assigned AS (
        SELECT picked.id, s.runner_id
        FROM picked
        JOIN jsonb_array_elements_text(slots) WITH ORDINALITY AS s(runner_id, slot)
            USING (slot)
    ), claimed AS (
        UPDATE jobs j
        SET status = 'running', attempt = j.attempt + 1, runner_id = assigned.runner_id,
            lease_expires_at = now() + make_interval(secs => lease_seconds),
            last_run = now(), updated_at = now(),
            started_at = NULL, finished_at = NULL, exit_code = NULL, reason = NULL,
            cancel_requested = false, run_after = NULL
        FROM assigned
        -- The ANY keeps this on the primary key, however many rows the planner expects from
        -- a LIMIT it cannot see (it guesses a tenth of the queue, and would scan the table).
        WHERE j.id = assigned.id AND j.id = ANY (ARRAY(SELECT id FROM picked))
        RETURNING j.id, j.attempt, j.runner_id, j.command, j.fair_seq,
            coalesce(j.timeout_seconds, nullif(default_timeout, 0)) AS timeout_seconds
    ), opened AS (
        INSERT INTO job_attempts (job_id, attempt, runner_id)
        SELECT id, attempt, runner_id FROM claimed
    ), clock AS (
        UPDATE fair_clock SET turn = (SELECT max(fair_seq) FROM claimed)
        WHERE turn < (SELECT max(fair_seq) FROM claimed)
    )
    SELECT b.max_concurrent, b.running, b.queued,
        jobsched_api_time((SELECT min(jobsched_due_at(run_after)) FROM jobs WHERE status = 'scheduled')),
        c.id, c.attempt, c.runner_id, c.command, c.timeout_seconds
    FROM budget b LEFT JOIN claimed c ON true ORDER BY c.id;
END
$$;

-- The API's view of a job, with the key at the end (JobRow's order).
CREATE OR REPLACE VIEW api_jobs AS
SELECT id, name, command, status,
       jobsched_api_time(last_run) AS last_run,
       jobsched_api_time(created_at) AS created_at,
       jobsched_api_time(updated_at) AS updated_at,
       attempt, max_attempts, timeout_seconds, runner_id,
       jobsched_api_time(started_at) AS started_at,
       jobsched_api_time(finished_at) AS finished_at,
       exit_code, reason, priority,
       CASE WHEN status IN ('queued', 'scheduled') THEN jobsched_api_time(run_after) END
           AS run_at,
       depends_on, concurrency_key
FROM jobs;
