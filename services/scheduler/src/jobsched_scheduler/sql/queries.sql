-- name: create_jobs
-- Inserts jobs from a JSON array, ids in its order; a duplicate name raises a unique
-- violation and inserts none. A run_at or delay sets run_after (the trigger of
-- migration 007 then makes the job `scheduled`). Returns them as `api_jobs` shows them
-- (their times are the database's own, which a client can hold). Writes one entry of
-- the audit log in the same statement: `job.create` with the job's name and command, or
-- for many jobs `jobs.create` with their count and ids.
WITH made AS (
INSERT INTO jobs (name, command, max_attempts, timeout_seconds, priority, run_after, depends_on,
                  concurrency_key)
SELECT name, command, max_attempts, timeout_seconds, coalesce(priority, 0),
       coalesce(run_at, now() + make_interval(secs => delay_seconds)), depends_on,
       concurrency_key
FROM ROWS FROM (jsonb_to_recordset(%(batch)s::jsonb)
                AS (name text, command text, max_attempts integer, timeout_seconds integer,
                    priority smallint, run_at timestamptz, delay_seconds float8,
                    depends_on integer[], concurrency_key text))
     WITH ORDINALITY AS j(name, command, max_attempts, timeout_seconds, priority, run_at,
                          delay_seconds, depends_on, concurrency_key, position)
ORDER BY position
RETURNING id, name, command, status, last_run, created_at, updated_at, attempt, max_attempts,
          timeout_seconds, runner_id, started_at, finished_at, exit_code, reason, priority,
          CASE WHEN status IN ('queued', 'scheduled') THEN run_after END AS run_at, depends_on,
          concurrency_key
), audited AS (
    INSERT INTO audit (actor, action, target, after, remote)
    SELECT %(actor)s::text,
           CASE WHEN count(*) = 1 THEN 'job.create' ELSE 'jobs.create' END,
           CASE WHEN count(*) = 1 THEN 'job/' || min(id) ELSE 'jobs/' || min(id) || '-' || max(id) END,
           CASE WHEN count(*) = 1
                THEN jsonb_build_object('name', min(name), 'command', min(command))
                ELSE jsonb_build_object('count', count(*), 'first_id', min(id), 'last_id', max(id))
           END,
           %(remote)s::text
    FROM made HAVING count(*) > 0
)
SELECT * FROM made;

-- name: create_jobs_apart
-- `create_jobs` for jobs of different callers (concurrent CreateJob calls), in one
-- statement: a job whose name is taken (or given earlier in the array) is left out, and
-- the others are inserted, each with its own `job.create` entry of the audit log under
-- its caller (`actor`, `remote` of each element).
WITH j AS (
    SELECT * FROM ROWS FROM (jsonb_to_recordset(%(batch)s::jsonb)
                    AS (name text, command text, max_attempts integer, timeout_seconds integer,
                        priority smallint, run_at timestamptz, delay_seconds float8,
                        depends_on integer[], concurrency_key text, actor text, remote text))
         WITH ORDINALITY AS j(name, command, max_attempts, timeout_seconds, priority, run_at,
                              delay_seconds, depends_on, concurrency_key, actor, remote, position)
), made AS (
    INSERT INTO jobs (name, command, max_attempts, timeout_seconds, priority, run_after,
                      depends_on, concurrency_key)
    SELECT name, command, max_attempts, timeout_seconds, coalesce(priority, 0),
           coalesce(run_at, now() + make_interval(secs => delay_seconds)), depends_on,
           concurrency_key
    FROM j ORDER BY position
    ON CONFLICT (name) DO NOTHING
    RETURNING id, name, command, status, last_run, created_at, updated_at, attempt,
              max_attempts, timeout_seconds, runner_id, started_at, finished_at, exit_code,
              reason, priority,
              CASE WHEN status IN ('queued', 'scheduled') THEN run_after END AS run_at,
              depends_on, concurrency_key
), audited AS (
    INSERT INTO audit (actor, action, target, after, remote)
    SELECT w.actor, 'job.create', 'job/' || made.id,
           jsonb_build_object('name', made.name, 'command', made.command), w.remote
    FROM made
    -- The first of the callers who gave the name is the one whose job was inserted.
    JOIN (SELECT DISTINCT ON (name) name, actor, remote FROM j ORDER BY name, position) w
        USING (name)
    ORDER BY made.id
)
SELECT * FROM made;

-- name: get_job
-- One job by id, as the API shows it.
SELECT * FROM api_jobs WHERE id = %(id)s;

-- name: list_jobs
-- A page of jobs, newest first, below a keyset cursor.
SELECT * FROM api_jobs WHERE id < %(before_id)s ORDER BY id DESC LIMIT %(limit)s;

-- name: list_jobs_by_status
-- A page of jobs in one status, newest first, below a keyset cursor.
SELECT * FROM api_jobs WHERE status = %(status)s AND id < %(before_id)s
ORDER BY id DESC LIMIT %(limit)s;

-- name: get_output
-- The output of one attempt of a job (attempt 0: the latest).
SELECT job_id, attempt, output, output_truncated FROM job_attempts
WHERE job_id = %(id)s AND (%(attempt)s = 0 OR attempt = %(attempt)s)
ORDER BY attempt DESC LIMIT 1;

-- name: get_config
-- The concurrency limit (NULL: never set) and whether new starts are held, in one read.
SELECT (SELECT value::integer FROM scheduler_config WHERE key = 'max_concurrent_jobs')
           AS max_concurrent,
       coalesce((SELECT value = 'true' FROM scheduler_config WHERE key = 'paused'), false)
           AS paused;

-- name: set_paused
-- Holds or releases new starts; the trigger wakes every scheduler.
INSERT INTO scheduler_config (key, value) VALUES ('paused', %(paused)s::boolean::text)
ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value, updated_at = now()
RETURNING value = 'true' AS paused;

-- name: job_status_for_change
-- A job's status, locked for the change that follows in the same transaction.
SELECT status FROM jobs WHERE id = %(id)s FOR UPDATE;

-- name: set_max_concurrent
-- Sets the concurrency limit; the trigger wakes every scheduler.
INSERT INTO scheduler_config (key, value) VALUES ('max_concurrent_jobs', %(value)s::text)
ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value, updated_at = now()
RETURNING value::integer AS value;

-- name: count_by_status
-- Job counts per status, from the counters the triggers keep.
SELECT status, sum(n)::bigint AS n FROM job_counts GROUP BY status;

-- name: claim
-- Claims queued jobs for free runner slots, as far as the limit allows: see
-- jobsched_claim in migration 004.
SELECT * FROM jobsched_claim(%(slots)s::jsonb, %(default_limit)s::integer,
                             %(lease_seconds)s::float8, %(default_timeout)s::integer);

-- name: record_started
-- Start times of current attempts, as the runners they were given to report them (a
-- null runner id: any, for tools and tests). Returns the reports refused because the
-- attempt is another runner's.
WITH s AS (
    SELECT * FROM unnest(%(job_ids)s::integer[], %(attempts)s::integer[],
                         %(started_ats)s::timestamptz[], %(runner_ids)s::text[])
        AS s(job_id, attempt, started_at, runner_id)
), current AS (
    UPDATE jobs j SET started_at = s.started_at
    FROM s WHERE j.id = s.job_id AND j.attempt = s.attempt AND j.status = 'running'
        AND j.runner_id = coalesce(s.runner_id, j.runner_id)
    RETURNING j.id, j.attempt, s.started_at
), stamped AS (
    UPDATE job_attempts a SET started_at = current.started_at
    FROM current WHERE a.job_id = current.id AND a.attempt = current.attempt
)
SELECT s.job_id, s.attempt, s.runner_id, j.runner_id AS holder
FROM s JOIN jobs j ON j.id = s.job_id AND j.attempt = s.attempt AND j.status = 'running'
WHERE j.runner_id IS DISTINCT FROM coalesce(s.runner_id, j.runner_id);

-- name: append_output
-- Appends output to current attempts, keeping at most output_limit characters; only
-- the runner an attempt was given to may (see record_started). Returns the reports
-- refused.
WITH o AS (
    SELECT * FROM unnest(%(job_ids)s::integer[], %(attempts)s::integer[],
                         %(outputs)s::text[], %(truncated)s::boolean[], %(runner_ids)s::text[])
        AS o(job_id, attempt, output, truncated, runner_id)
), appended AS (
    UPDATE job_attempts a
    SET output = left(a.output || o.output, %(output_limit)s),
        output_truncated = a.output_truncated OR o.truncated
        OR length(a.output) + length(o.output) > %(output_limit)s
    FROM o JOIN jobs j ON j.id = o.job_id AND j.attempt = o.attempt AND j.status = 'running'
        AND j.runner_id = coalesce(o.runner_id, j.runner_id)
    WHERE a.job_id = o.job_id AND a.attempt = o.attempt
)
SELECT o.job_id, o.attempt, o.runner_id, j.runner_id AS holder
FROM o JOIN jobs j ON j.id = o.job_id AND j.attempt = o.attempt AND j.status = 'running'
WHERE j.runner_id IS DISTINCT FROM coalesce(o.runner_id, j.runner_id);

-- name: finish
-- Ends current attempts: completed, cancelled, scheduled again after a backoff when
-- attempts remain, or failed. Reports of stale attempts, and of attempts given to
-- another runner than the one reporting (a null runner id: any), change nothing; the
-- latter come back with the status 'refused', and the holder's id in `holder`.
WITH f AS (
    -- One JSON parameter: psycopg would dump eight arrays element by element in Python.
    SELECT * FROM jsonb_to_recordset(%(batch)s::jsonb)
        AS f(job_id integer, attempt integer, exit_code integer, reason text,
             started_at timestamptz, finished_at timestamptz, output text, truncated boolean,
             runner_id text)
), done AS (
    UPDATE jobs j
    SET status = CASE WHEN j.cancel_requested THEN 'cancelled'
                      WHEN f.exit_code = 0 AND f.reason = '' THEN 'completed'
                      WHEN j.attempt < j.max_attempts THEN 'scheduled'
                      ELSE 'failed' END,
        run_after = CASE WHEN NOT j.cancel_requested AND (f.exit_code <> 0 OR f.reason <> '')
                         AND j.attempt < j.max_attempts
                    THEN jobsched_retry_at(j.attempt) END,
        exit_code = f.exit_code,
        reason = CASE WHEN j.cancel_requested THEN 'cancelled'
                      WHEN f.reason <> '' THEN f.reason
                      WHEN f.exit_code <> 0 THEN 'exit code ' || f.exit_code END,
        started_at = coalesce(j.started_at, f.started_at), finished_at = f.finished_at,
        updated_at = now(), lease_expires_at = NULL
    FROM f WHERE j.id = f.job_id AND j.attempt = f.attempt AND j.status = 'running'
        AND j.runner_id = coalesce(f.runner_id, j.runner_id)
    RETURNING j.id, j.attempt, j.status, j.reason, j.exit_code, j.started_at, j.finished_at,
        j.run_after, j.created_at
), stored AS (
    UPDATE job_attempts a
    SET exit_code = done.exit_code, reason = done.reason,
        started_at = done.started_at, finished_at = done.finished_at,
        output = left(a.output || f.output, %(output_limit)s),
        output_truncated = a.output_truncated OR f.truncated
        OR length(a.output) + length(f.output) > %(output_limit)s
    FROM done JOIN f ON f.job_id = done.id AND f.attempt = done.attempt
    WHERE a.job_id = done.id AND a.attempt = done.attempt
    RETURNING a.job_id, a.attempt, done.status,
        extract(epoch FROM done.started_at - done.created_at)::float8 AS waited,
        extract(epoch FROM done.finished_at - done.started_at)::float8 AS ran,
        NULL::text AS runner_id, NULL::text AS holder
)
SELECT * FROM stored
UNION ALL
SELECT f.job_id, f.attempt, 'refused', NULL, NULL, f.runner_id, j.runner_id
FROM f JOIN jobs j ON j.id = f.job_id AND j.attempt = f.attempt AND j.status = 'running'
WHERE j.runner_id IS DISTINCT FROM coalesce(f.runner_id, j.runner_id);

-- name: renew_leases
-- Extends the leases of current attempts that a runner still runs, if they were given to
-- it: another runner's heartbeat renews nothing. Returns those renewed, and whether each
-- was asked to stop.
UPDATE jobs j
SET lease_expires_at = now() + make_interval(secs => %(lease_seconds)s)
FROM unnest(%(job_ids)s::integer[], %(attempts)s::integer[]) AS r(job_id, attempt)
WHERE j.id = r.job_id AND j.attempt = r.attempt AND j.status = 'running'
  AND j.runner_id = %(runner_id)s
RETURNING j.id, j.attempt, j.cancel_requested;

-- name: expire_leases
-- Ends attempts whose runner stopped renewing their lease: retried when attempts remain.
WITH lost AS (
    UPDATE jobs
    SET status = CASE WHEN cancel_requested THEN 'cancelled'
                      WHEN attempt < max_attempts THEN 'scheduled'
                      ELSE 'failed' END,
        run_after = CASE WHEN NOT cancel_requested AND attempt < max_attempts
                    THEN jobsched_retry_at(attempt) END,
        reason = 'runner lost', finished_at = now(), updated_at = now(),
        lease_expires_at = NULL
    WHERE status = 'running' AND lease_expires_at < now()
    RETURNING id, attempt, status, run_after
)
UPDATE job_attempts a SET reason = 'runner lost', finished_at = now()
FROM lost WHERE a.job_id = lost.id AND a.attempt = lost.attempt
RETURNING a.job_id, a.attempt, lost.status, lost.run_after;

-- name: end_attempts
-- Ends current attempts that the scheduler gave up on before their runner took them (an
-- assignment not delivered, or not acknowledged in time) as a lost lease ends them,
-- with the reason given: retried when attempts remain. Their runner is told to kill
-- them, and any later report of theirs is stale. An attempt whose lease was renewed
-- since its claim (its runner took it to another scheduler) is left alone: its lease
-- still holds it, until it is no longer renewed.
WITH lost AS (
    UPDATE jobs j
    SET status = CASE WHEN cancel_requested THEN 'cancelled'
                      WHEN j.attempt < max_attempts THEN 'scheduled'
                      ELSE 'failed' END,
        run_after = CASE WHEN NOT cancel_requested AND j.attempt < max_attempts
                    THEN jobsched_retry_at(j.attempt) END,
        reason = %(reason)s, finished_at = now(), updated_at = now(),
        lease_expires_at = NULL
    FROM unnest(%(job_ids)s::integer[], %(attempts)s::integer[]) AS e(job_id, attempt),
         job_attempts o
    WHERE j.id = e.job_id AND j.attempt = e.attempt AND j.status = 'running'
      AND o.job_id = j.id AND o.attempt = j.attempt
      -- The claim set both from one now(): equal until a renewal moves the lease on.
      AND j.lease_expires_at <= o.claimed_at + make_interval(secs => %(lease_seconds)s)
    RETURNING j.id, j.attempt
)
UPDATE job_attempts a SET reason = %(reason)s, finished_at = now()
FROM lost WHERE a.job_id = lost.id AND a.attempt = lost.attempt
RETURNING a.job_id, a.attempt;

-- name: end_unheld_leases
-- A runner that registers again (it restarted, or reconnected) names every attempt it
-- still holds: the leases of its other running attempts end now, and `expire_leases`
-- then ends those attempts as it ends any other lost one.
UPDATE jobs SET lease_expires_at = '-infinity'
WHERE status = 'running' AND runner_id = %(runner_id)s
  AND (id, attempt) NOT IN (
      SELECT * FROM unnest(%(job_ids)s::integer[], %(attempts)s::integer[]));

-- name: cancel_queued
-- Ends a job that has not started at once.
UPDATE jobs
SET status = 'cancelled', reason = 'cancelled', finished_at = now(), updated_at = now()
WHERE id = %(id)s AND status IN ('queued', 'scheduled')
RETURNING id;

-- name: request_cancel
-- Marks a running job to be stopped; it ends `cancelled` when its runner reports.
UPDATE jobs SET cancel_requested = true, updated_at = now()
WHERE id = %(id)s AND status = 'running'
RETURNING id;

-- name: retry_job
-- Queues a finished job again, allowing it one more attempt when it has used them all.
-- It waits again for its dependencies; one that failed or was cancelled refuses it.
WITH deps AS (
    SELECT d.* FROM jobs j, jobsched_dependency_state(j.depends_on) d
    WHERE j.id = %(id)s AND j.depends_on IS NOT NULL
)
UPDATE jobs
SET status = 'queued', run_after = NULL, reason = NULL, exit_code = NULL,
    started_at = NULL, finished_at = NULL, updated_at = now(),
    max_attempts = greatest(max_attempts, attempt + 1),
    unmet_dependencies = coalesce((SELECT unmet FROM deps), 0)
WHERE id = %(id)s AND status IN ('completed', 'failed', 'cancelled')
  AND NOT EXISTS (SELECT 1 FROM deps WHERE broken_id IS NOT NULL)
RETURNING id;

-- name: list_attempts
-- Every attempt of a job, oldest first, without output.
SELECT job_id, attempt, runner_id, claimed_at, started_at, finished_at, exit_code, reason,
       length(output) AS output_length, output_truncated
FROM job_attempts WHERE job_id = %(id)s ORDER BY attempt;
