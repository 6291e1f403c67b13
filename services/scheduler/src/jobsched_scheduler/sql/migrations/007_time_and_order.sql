-- Time and order: priorities, jobs that wait for a time (status `scheduled`), jobs that
-- wait for others (`depends_on`), and a global pause.

ALTER TABLE jobs
    ADD COLUMN priority SMALLINT NOT NULL DEFAULT 0,
    ADD COLUMN depends_on INTEGER[],
    -- How many of depends_on have not completed yet: the claim takes only jobs at 0.
    ADD COLUMN unmet_dependencies INTEGER NOT NULL DEFAULT 0;

ALTER TABLE jobs ADD CONSTRAINT jobs_priority_range
    CHECK (priority BETWEEN -100 AND 100) NOT VALID;
ALTER TABLE jobs DROP CONSTRAINT jobs_status_known;
ALTER TABLE jobs ADD CONSTRAINT jobs_status_known
    CHECK (status IN ('queued', 'scheduled', 'running', 'completed', 'failed', 'cancelled'))
    NOT VALID;

-- Retries waiting out their backoff are `scheduled` now, as delayed jobs are.
UPDATE jobs SET status = 'scheduled' WHERE status = 'queued' AND run_after > now();

-- The claim's order, served by one index: highest priority first, then oldest.
DROP INDEX jobs_queued_idx;
CREATE INDEX jobs_ready_idx ON jobs (priority DESC, id)
    WHERE status = 'queued' AND unmet_dependencies = 0;
-- When `scheduled` jobs fall due; one without a time (written by hand) is due at once.
CREATE FUNCTION jobsched_due_at(run_after TIMESTAMPTZ) RETURNS TIMESTAMPTZ
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$ SELECT coalesce(run_after, '-infinity') $$;
CREATE INDEX jobs_scheduled_idx ON jobs (jobsched_due_at(run_after)) WHERE status = 'scheduled';
-- Who depends on a job that just ended.
CREATE INDEX jobs_depends_on_idx ON jobs USING gin (depends_on) WHERE depends_on IS NOT NULL;

-- What the dependencies of a job stand at: how many have not completed, and the first
-- one that ended failed or cancelled (then the job never runs). Locks them (FOR SHARE)
-- so that none ends between this count and the commit of the job that depends on it:
-- its end then waits, and its trigger sees the new job.
CREATE FUNCTION jobsched_dependency_state(
    ids INTEGER[], OUT unmet INTEGER, OUT broken_id INTEGER, OUT broken_status TEXT
) LANGUAGE plpgsql VOLATILE AS $$
DECLARE
    missing INTEGER;
BEGIN
    SELECT count(*) FILTER (WHERE status IS DISTINCT FROM 'completed'),
           (array_agg(id ORDER BY id) FILTER (WHERE status IN ('failed', 'cancelled')))[1]
    INTO unmet, broken_id
    FROM (SELECT id, status FROM jobs WHERE id = ANY (ids) FOR SHARE) d;
    SELECT min(i) INTO missing FROM unnest(ids) i WHERE NOT EXISTS (SELECT 1 FROM jobs WHERE id = i);
    IF missing IS NOT NULL THEN
        RAISE foreign_key_violation USING MESSAGE = format('depends_on: job %s does not exist', missing);
    END IF;
    SELECT status INTO broken_status FROM jobs WHERE id = broken_id;
END $$;

-- Every new row, from the API or by hand with SQL: a future run_after makes it
-- `scheduled` (a past or missing one `queued`), its dependencies are counted, and a
-- dependency that already failed or was cancelled ends it at once.
CREATE FUNCTION jobsched_prepare_job() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    deps RECORD;
BEGIN
    IF NEW.status IN ('queued', 'scheduled') OR NEW.status IS NULL THEN
        NEW.status := CASE WHEN NEW.run_after > now() THEN 'scheduled' ELSE 'queued' END;
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

CREATE TRIGGER jobs_prepare BEFORE INSERT ON jobs
    FOR EACH ROW EXECUTE FUNCTION jobsched_prepare_job();

-- When jobs end, their dependents learn it in the same transaction: a completed job
-- counts down its waiting dependents; a job failed or cancelled for good cancels every
-- job that waits on it, directly or through others, with the reason naming the one it
-- waited on. Updates by hand with SQL take this path too.
CREATE FUNCTION jobsched_resolve_dependencies() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    completed INTEGER[];
    broken INTEGER[];
BEGIN
    SELECT array_agg(n.id) FILTER (WHERE n.status = 'completed'),
           array_agg(n.id) FILTER (WHERE n.status IN ('failed', 'cancelled'))
    INTO completed, broken
    FROM new_rows n JOIN old_rows o USING (id)
    WHERE n.status IS DISTINCT FROM o.status;

    IF completed IS NOT NULL THEN
        UPDATE jobs d
        SET unmet_dependencies = greatest(0, d.unmet_dependencies - cardinality(
                ARRAY(SELECT unnest(d.depends_on) INTERSECT SELECT unnest(completed))))
        WHERE d.depends_on && completed AND d.status IN ('queued', 'scheduled');
    END IF;

    IF broken IS NOT NULL THEN
        WITH RECURSIVE doomed (id, cause) AS (
            SELECT d.id, b.id
            FROM unnest(broken) AS b(id)
            JOIN jobs d ON d.depends_on && ARRAY[b.id]
            WHERE d.status IN ('queued', 'scheduled')
            UNION
            SELECT d.id, x.id
            FROM doomed x JOIN jobs d ON d.depends_on && ARRAY[x.id]
            WHERE d.status IN ('queued', 'scheduled')
        ), first_cause AS (
            SELECT DISTINCT ON (doomed.id) doomed.id, doomed.cause,
                   coalesce(c.status, 'cancelled') AS how
            FROM doomed LEFT JOIN new_rows c ON c.id = doomed.cause
            ORDER BY doomed.id, doomed.cause
        )
        UPDATE jobs d
        SET status = 'cancelled', reason = format('dependency %s %s', f.cause, f.how),
            finished_at = now(), updated_at = now(), run_after = NULL
        FROM first_cause f
        WHERE d.id = f.id AND d.status IN ('queued', 'scheduled');
    END IF;
    RETURN NULL;
END $$;

CREATE TRIGGER jobs_resolve_dependencies AFTER UPDATE ON jobs
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION jobsched_resolve_dependencies();

INSERT INTO scheduler_config (key, value) VALUES ('paused', 'false')
ON CONFLICT (key) DO NOTHING;

-- The claim of 004, in the claim's order (highest priority, then oldest), with what
-- makes a job eligible: due (`scheduled` jobs whose time has come are queued first, in
-- this same transaction), dependencies met, and the scheduler not paused. Also returns
-- when the next `scheduled` job falls due, so that dispatch wakes then.
DROP FUNCTION jobsched_claim(JSONB, INTEGER, DOUBLE PRECISION, INTEGER);
CREATE FUNCTION jobsched_claim(
    slots JSONB, default_limit INTEGER, lease_seconds DOUBLE PRECISION, default_timeout INTEGER
) RETURNS TABLE (
    max_concurrent INTEGER, running BIGINT, queued BIGINT, next_due TIMESTAMPTZ,
    id INTEGER, attempt INTEGER, runner_id TEXT, command TEXT, timeout_seconds INTEGER
) LANGUAGE plpgsql VOLATILE AS $$
#variable_conflict use_column
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
    RETURN QUERY
    WITH budget AS (
        SELECT coalesce((SELECT value::integer FROM scheduler_config
                         WHERE key = 'max_concurrent_jobs'), default_limit) AS max_concurrent,
               coalesce((SELECT value = 'true' FROM scheduler_config WHERE key = 'paused'),
                        false) AS paused,
               coalesce(sum(n) FILTER (WHERE status = 'running'), 0)::bigint AS running,
               coalesce(sum(n) FILTER (WHERE status = 'queued'), 0)::bigint AS queued
        FROM job_counts WHERE status IN ('running', 'queued')
    ), picked AS (
        SELECT id, row_number() OVER (ORDER BY priority DESC, id) AS slot
        FROM (SELECT id, priority FROM jobs
              WHERE status = 'queued' AND unmet_dependencies = 0
                AND (run_after IS NULL OR run_after <= now())
              ORDER BY priority DESC, id
              LIMIT (SELECT CASE WHEN paused THEN 0
                                 ELSE greatest(0, least(max_concurrent - running, queued,
                                                        jsonb_array_length(slots))) END
                     FROM budget)
              FOR UPDATE SKIP LOCKED) p
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
        RETURNING j.id, j.attempt, j.runner_id, j.command,
            coalesce(j.timeout_seconds, nullif(default_timeout, 0)) AS timeout_seconds
    ), opened AS (
        INSERT INTO job_attempts (job_id, attempt, runner_id)
        SELECT id, attempt, runner_id FROM claimed
    )
    SELECT b.max_concurrent, b.running, b.queued,
        jobsched_api_time((SELECT min(jobsched_due_at(run_after)) FROM jobs WHERE status = 'scheduled')),
        c.id, c.attempt, c.runner_id, c.command, c.timeout_seconds
    FROM budget b LEFT JOIN claimed c ON true ORDER BY c.id;
END
$$;

-- The API's view of a job, with the new columns at the end (JobRow's order).
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
       depends_on
FROM jobs;
