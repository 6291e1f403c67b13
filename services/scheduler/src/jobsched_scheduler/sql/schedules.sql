-- name: create_schedule
-- Inserts a schedule; a name taken raises a unique violation. Returns the row.
INSERT INTO schedules (name, command, cron, every_seconds, timezone, overlap,
                       catchup_window_seconds, paused, priority, max_attempts,
                       timeout_seconds, next_run_at, concurrency_key)
VALUES (%(name)s, %(command)s, %(cron)s, %(every_seconds)s, %(timezone)s, %(overlap)s,
        %(catchup_window_seconds)s, %(paused)s, %(priority)s, %(max_attempts)s,
        %(timeout_seconds)s, %(next_run_at)s, %(concurrency_key)s)
RETURNING *;

-- name: update_schedule
-- Replaces what a client sets and the next run; updated_at is the time of the last
-- change by a client (firing does not touch it).
UPDATE schedules SET command = %(command)s, cron = %(cron)s,
    every_seconds = %(every_seconds)s, timezone = %(timezone)s, overlap = %(overlap)s,
    catchup_window_seconds = %(catchup_window_seconds)s, paused = %(paused)s,
    priority = %(priority)s, max_attempts = %(max_attempts)s,
    timeout_seconds = %(timeout_seconds)s, next_run_at = %(next_run_at)s,
    concurrency_key = %(concurrency_key)s, updated_at = now()
WHERE name = %(name)s
RETURNING *;

-- name: get_schedule
-- One schedule by name.
SELECT * FROM schedules WHERE name = %(name)s;

-- name: lock_schedule
-- One schedule by name, locked until the transaction ends.
SELECT * FROM schedules WHERE name = %(name)s FOR UPDATE;

-- name: list_schedules
-- Every schedule, by name.
SELECT * FROM schedules ORDER BY name;

-- name: delete_schedule
-- Deletes a schedule; the jobs it made stay.
DELETE FROM schedules WHERE name = %(name)s RETURNING name;

-- name: set_schedule_paused
-- Pauses (next run NULL) or resumes (next run given) a schedule.
UPDATE schedules SET paused = %(paused)s, next_run_at = %(next_run_at)s, updated_at = now()
WHERE name = %(name)s
RETURNING *;

-- name: trigger_schedule
-- Makes a job of a schedule now, paused or not, and records it as its last job.
WITH made AS (
    INSERT INTO jobs (name, command, priority, max_attempts, timeout_seconds, concurrency_key)
    SELECT %(job_name)s, command, priority, max_attempts, timeout_seconds, concurrency_key
    FROM schedules WHERE name = %(name)s
    RETURNING id, created_at
), noted AS (
    UPDATE schedules s SET last_run_at = made.created_at, last_job_id = made.id
    FROM made WHERE s.name = %(name)s
)
SELECT id FROM made;

-- name: due_schedules
-- Locks up to `batch` schedules whose next run has come (or was never set, by hand), for
-- this transaction; those another scheduler holds are skipped. Says whether the job each
-- made last has finished, and the database's time, which every scheduler shares.
SELECT s.name, s.command, s.cron, s.every_seconds, s.timezone, s.overlap,
       s.catchup_window_seconds, s.priority, s.max_attempts, s.timeout_seconds,
       s.next_run_at, s.concurrency_key,
       coalesce(j.id IS NULL OR j.status IN ('completed', 'failed', 'cancelled'), false)
           AS previous_finished,
       now() AS now
FROM schedules s LEFT JOIN jobs j ON j.id = s.last_job_id
WHERE NOT s.paused AND (s.next_run_at IS NULL OR s.next_run_at <= now())
ORDER BY s.next_run_at NULLS FIRST
LIMIT %(batch)s
FOR UPDATE OF s SKIP LOCKED;

-- name: fire_schedules
-- For each schedule of a JSON array: makes its job when it names one (a name that exists
-- makes none, so a fire time makes at most one job), counts a skip, moves its next run.
WITH fired AS (
    SELECT * FROM ROWS FROM (jsonb_to_recordset(%(batch)s::jsonb) AS (
        schedule text, job_name text, command text, priority smallint, max_attempts integer,
        timeout_seconds integer, fire_at timestamptz, next_run_at timestamptz,
        skipped integer, paused boolean, concurrency_key text)) WITH ORDINALITY AS f(
        schedule, job_name, command, priority, max_attempts, timeout_seconds, fire_at,
        next_run_at, skipped, paused, concurrency_key, position)
), made AS (
    INSERT INTO jobs (name, command, priority, max_attempts, timeout_seconds, concurrency_key)
    SELECT job_name, command, priority, max_attempts, timeout_seconds, concurrency_key
    FROM fired WHERE job_name IS NOT NULL ORDER BY position
    ON CONFLICT (name) DO NOTHING
    RETURNING id, name
)
UPDATE schedules s SET
    next_run_at = f.next_run_at,
    paused = f.paused,
    last_run_at = CASE WHEN made.id IS NULL THEN s.last_run_at ELSE f.fire_at END,
    last_job_id = coalesce(made.id, s.last_job_id),
    skipped_count = s.skipped_count + f.skipped
FROM fired f LEFT JOIN made ON made.name = f.job_name
WHERE s.name = f.schedule
RETURNING s.name, made.id AS job_id;

-- name: next_schedule_due
-- In how many seconds, by the database's clock, the earliest live schedule is due (0
-- when it is, or when it was set by hand without a next run); no row when none is live.
SELECT greatest(0, extract(epoch FROM coalesce(next_run_at, now()) - now()))::float8
    AS seconds
FROM schedules WHERE NOT paused
ORDER BY next_run_at NULLS FIRST LIMIT 1;
