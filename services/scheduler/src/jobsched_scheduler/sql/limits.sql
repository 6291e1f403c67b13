-- name: list_limits
-- Every key with a limit or with jobs queued or running, by key, with those counts.
WITH counts AS (
    SELECT concurrency_key AS key,
           count(*) FILTER (WHERE status = 'running') AS running,
           count(*) FILTER (WHERE status = 'queued') AS queued
    FROM jobs WHERE status IN ('queued', 'running') AND concurrency_key IS NOT NULL
    GROUP BY 1
)
SELECT key, l.max_concurrent_jobs, coalesce(l.paused, false) AS paused,
       coalesce(c.running, 0) AS running, coalesce(c.queued, 0) AS queued
FROM concurrency_limits l FULL JOIN counts c USING (key)
ORDER BY key;

-- name: get_limit
-- One key as `list_limits` shows it; no row when it has no limit and no jobs waiting
-- or running.
SELECT k.key, l.max_concurrent_jobs, coalesce(l.paused, false) AS paused,
       count(*) FILTER (WHERE j.status = 'running') AS running,
       count(*) FILTER (WHERE j.status = 'queued') AS queued
FROM (SELECT %(key)s::text AS key) k
LEFT JOIN concurrency_limits l ON l.key = k.key
LEFT JOIN jobs j ON j.concurrency_key = k.key AND j.status IN ('queued', 'running')
GROUP BY k.key, l.max_concurrent_jobs, l.paused
HAVING l.max_concurrent_jobs IS NOT NULL OR bool_or(l.paused IS NOT NULL) OR count(j.id) > 0;

-- name: set_limit
-- Sets a key's limit and pause; the trigger wakes every scheduler.
INSERT INTO concurrency_limits AS l (key, max_concurrent_jobs, paused)
VALUES (%(key)s, %(max_concurrent_jobs)s, %(paused)s)
ON CONFLICT (key) DO UPDATE
SET max_concurrent_jobs = EXCLUDED.max_concurrent_jobs, paused = EXCLUDED.paused,
    updated_at = now();

-- name: delete_limit
-- Removes a key's limit; returns what it was when it had one.
DELETE FROM concurrency_limits WHERE key = %(key)s RETURNING key, max_concurrent_jobs, paused;

-- name: limit_settings
-- A key's own limit and pause, as set (none: no row).
SELECT max_concurrent_jobs, paused FROM concurrency_limits WHERE key = %(key)s;
