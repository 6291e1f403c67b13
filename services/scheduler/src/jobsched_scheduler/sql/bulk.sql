-- name: search_recent
-- A search's first look: the newest `window` jobs (of the status, if one is given) below
-- the cursor, matched row by row, newest first (only the matches are read whole). Common
-- text fills the page here; rarer text goes on with `search_jobs` below the window.
SELECT a.* FROM (SELECT id FROM (SELECT id, name, command FROM jobs
                                 WHERE (%(status)s::text IS NULL OR status = %(status)s::text)
                                   AND id < %(before_id)s
                                 ORDER BY id DESC LIMIT %(window)s) w
                 WHERE name ILIKE %(pattern)s OR command ILIKE %(pattern)s
                 ORDER BY id DESC LIMIT %(limit)s) m
JOIN api_jobs a USING (id)
ORDER BY a.id DESC;

-- name: search_window_end
-- How many jobs `search_recent` looked at, and the lowest id among them.
SELECT count(*) AS seen, min(id) AS lowest
FROM (SELECT id FROM jobs
      WHERE (%(status)s::text IS NULL OR status = %(status)s::text) AND id < %(before_id)s
      ORDER BY id DESC LIMIT %(window)s) w;

-- name: search_jobs
-- A page of jobs whose name or command contains the text (`pattern`, its ILIKE form), of
-- one status or any (NULL), newest first, below a keyset cursor: the trigrams of
-- job_search find the candidates, name and command decide. For text of 3 characters or
-- more that `search_recent` found rare; run unprepared, so that the plan fits the text.
SELECT * FROM api_jobs j
WHERE EXISTS (SELECT 1 FROM job_search s
              WHERE s.job_id = j.id AND s.trigrams @> jobsched_search_keys(%(text)s::text))
  AND (name ILIKE %(pattern)s OR command ILIKE %(pattern)s)
  AND (%(status)s::text IS NULL OR status = %(status)s::text)
  AND id < %(before_id)s
ORDER BY id DESC LIMIT %(limit)s;

-- name: count_of_status
-- How many jobs are in one status, from the counters the triggers keep.
SELECT coalesce(sum(n), 0)::bigint AS n FROM job_counts WHERE status = %(status)s;

-- name: search_jobs_short
-- `search_jobs` for text of 1 or 2 characters, or within a status with few jobs:
-- matched row by row, newest first.
SELECT * FROM api_jobs
WHERE (name ILIKE %(pattern)s OR command ILIKE %(pattern)s)
  AND (%(status)s::text IS NULL OR status = %(status)s::text)
  AND id < %(before_id)s
ORDER BY id DESC LIMIT %(limit)s;

-- name: lock_matching
-- The next batch of jobs matching a filter (text as in `search_jobs_short`, NULL: any),
-- in a status the action applies to, below a keyset cursor, locked until the
-- transaction ends (waiting for a claim that holds one, never skipping it). Run
-- unprepared.
SELECT id FROM jobs
WHERE (%(pattern)s::text IS NULL OR name ILIKE %(pattern)s OR command ILIKE %(pattern)s)
  AND (%(status)s::text IS NULL OR status = %(status)s::text)
  AND status = ANY (%(applies_to)s::text[])
  AND id < %(before_id)s
ORDER BY id DESC LIMIT %(batch)s
FOR UPDATE;

-- name: lock_matching_indexed
-- `lock_matching` for text of 3 characters or more, found as `search_jobs` finds it.
SELECT id FROM jobs j
WHERE EXISTS (SELECT 1 FROM job_search s
              WHERE s.job_id = j.id AND s.trigrams @> jobsched_search_keys(%(text)s::text))
  AND (name ILIKE %(pattern)s OR command ILIKE %(pattern)s)
  AND (%(status)s::text IS NULL OR status = %(status)s::text)
  AND status = ANY (%(applies_to)s::text[])
  AND id < %(before_id)s
ORDER BY id DESC LIMIT %(batch)s
FOR UPDATE OF j;

-- name: cancel_many
-- Ends the listed jobs that have not started, and asks the running ones (not yet asked)
-- to stop; returns what each became, so that the runners of running ones are told.
WITH queued AS (
    UPDATE jobs
    SET status = 'cancelled', reason = 'cancelled', finished_at = now(), updated_at = now()
    WHERE id = ANY (%(ids)s::integer[]) AND status IN ('queued', 'scheduled')
    RETURNING id, status, attempt, runner_id
), running AS (
    UPDATE jobs SET cancel_requested = true, updated_at = now()
    WHERE id = ANY (%(ids)s::integer[]) AND status = 'running' AND NOT cancel_requested
    RETURNING id, status, attempt, runner_id
)
SELECT * FROM queued UNION ALL SELECT * FROM running;

-- name: retry_many
-- Queues the listed finished jobs again, as `retry_job` queues one. A job whose
-- dependency failed, was cancelled or no longer exists is passed over. Its
-- dependencies are locked (FOR SHARE), so that none ends before this commits unseen.
WITH target AS (
    SELECT id, depends_on FROM jobs
    WHERE id = ANY (%(ids)s::integer[]) AND status IN ('completed', 'failed', 'cancelled')
), dependency AS (
    SELECT id, status FROM jobs
    WHERE id IN (SELECT unnest(depends_on) FROM target) FOR SHARE
), deps AS (
    SELECT t.id,
           count(*) FILTER (WHERE d.status IS DISTINCT FROM 'completed') AS unmet,
           bool_or(d.id IS NULL OR d.status IN ('failed', 'cancelled')) AS broken
    FROM target t CROSS JOIN LATERAL unnest(t.depends_on) AS wanted(id)
    LEFT JOIN dependency d ON d.id = wanted.id
    GROUP BY t.id
)
UPDATE jobs j
SET status = 'queued', run_after = NULL, reason = NULL, exit_code = NULL,
    started_at = NULL, finished_at = NULL, updated_at = now(),
    max_attempts = greatest(j.max_attempts, j.attempt + 1),
    unmet_dependencies = coalesce(deps.unmet, 0)
FROM target LEFT JOIN deps USING (id)
WHERE j.id = target.id AND j.status IN ('completed', 'failed', 'cancelled')
  AND NOT coalesce(deps.broken, false)
RETURNING j.id;

-- name: delete_finished
-- Deletes one finished job; its attempts and output go with it (ON DELETE CASCADE).
DELETE FROM jobs WHERE id = %(id)s AND status IN ('completed', 'failed', 'cancelled')
RETURNING id, name, status;

-- name: job_status
-- A job's status, or no row when it does not exist.
SELECT status FROM jobs WHERE id = %(id)s;

-- name: delete_expired
-- Deletes up to `batch` jobs of one finished status that finished before the cutoff,
-- oldest first, with their attempts and output; rows another transaction holds are left
-- for the next batch.
DELETE FROM jobs WHERE id IN (
    SELECT id FROM jobs
    WHERE status = %(status)s::text AND finished_at < %(cutoff)s::timestamptz
    ORDER BY finished_at LIMIT %(batch)s
    FOR UPDATE SKIP LOCKED)
RETURNING id;

-- name: delete_expired_audit
-- Deletes, of the `batch` oldest entries of the audit log (by id, which follows time;
-- no index on `at` to keep up on every write), those written before the cutoff. The
-- sweep repeats it until one deletes none: the oldest entries go first, and a run
-- stops at the first window of entries still young.
DELETE FROM audit WHERE at < %(cutoff)s::timestamptz AND id IN (
    SELECT id FROM audit ORDER BY id LIMIT %(batch)s FOR UPDATE SKIP LOCKED)
RETURNING id;
