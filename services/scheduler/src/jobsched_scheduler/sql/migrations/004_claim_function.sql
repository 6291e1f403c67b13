-- The claim as one function, so that the scheduler sends one statement: the lock and
-- the claim in one implicit transaction, one round trip with no pipeline around it.
-- Each statement of a VOLATILE function takes a new snapshot: the claim, after the
-- lock, sees everything the previous holder committed.
--
-- Claims queued jobs, oldest first, for free runner slots (`slots`: a JSON array of
-- the runner of each slot, in the order to fill them), as far as the limit allows, and
-- opens their attempts. Slots taken (every attempt claimed and not yet reported
-- finished) and jobs waiting come from the counters: exact, since they change in the
-- same transactions as the rows. One row per claimed job, each with the limit and
-- counts seen; one row with no job when nothing was claimed.
CREATE FUNCTION jobsched_claim(
    slots JSONB, default_limit INTEGER, lease_seconds DOUBLE PRECISION, default_timeout INTEGER
) RETURNS TABLE (
    max_concurrent INTEGER, running BIGINT, queued BIGINT,
    id INTEGER, attempt INTEGER, runner_id TEXT, command TEXT, timeout_seconds INTEGER
) LANGUAGE plpgsql VOLATILE AS $$
#variable_conflict use_column
BEGIN
    -- Serialises claims across every scheduler process, until the transaction ends.
    PERFORM pg_advisory_xact_lock(hashtext('jobsched.dispatch'));
    RETURN QUERY
    WITH budget AS (
        SELECT coalesce((SELECT value::integer FROM scheduler_config
                         WHERE key = 'max_concurrent_jobs'), default_limit) AS max_concurrent,
               coalesce(sum(n) FILTER (WHERE status = 'running'), 0)::bigint AS running,
               coalesce(sum(n) FILTER (WHERE status = 'queued'), 0)::bigint AS queued
        FROM job_counts WHERE status IN ('running', 'queued')
    ), picked AS (
        SELECT id, row_number() OVER (ORDER BY id) AS slot
        FROM (SELECT id FROM jobs
              WHERE status = 'queued' AND (run_after IS NULL OR run_after <= now())
              ORDER BY id
              LIMIT (SELECT greatest(0, least(max_concurrent - running, queued,
                                              jsonb_array_length(slots)))
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
    SELECT b.max_concurrent, b.running, b.queued, c.id, c.attempt, c.runner_id, c.command,
        c.timeout_seconds
    FROM budget b LEFT JOIN claimed c ON true ORDER BY c.id;
END
$$;
