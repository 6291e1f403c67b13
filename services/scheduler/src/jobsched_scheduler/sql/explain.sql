-- name: explain_job
-- A job and what the claim weighs for it: the global limit, pause and the jobs holding
-- its slots; its key's limit, pause and holders; the dependencies not completed yet.
-- Running jobs are counted as the claim counts them (job_counts; a key's from jobs).
SELECT j.id, j.status, j.priority, j.fair_seq, j.concurrency_key, j.unmet_dependencies,
    jobsched_api_time(j.run_after) AS run_at, j.runner_id, j.attempt, j.max_attempts,
    jobsched_api_time(coalesce(j.started_at, j.last_run)) AS since,
    jobsched_api_time(j.finished_at) AS finished_at, j.reason,
    coalesce((SELECT value::integer FROM scheduler_config WHERE key = 'max_concurrent_jobs'),
             %(default_limit)s) AS global_limit,
    coalesce((SELECT value = 'true' FROM scheduler_config WHERE key = 'paused'), false)
        AS paused,
    (SELECT coalesce(sum(n), 0) FROM job_counts WHERE status = 'running')::bigint
        AS global_running,
    ARRAY(SELECT r.id FROM jobs r WHERE r.status = 'running' ORDER BY r.id LIMIT 10)
        AS global_holders,
    ARRAY(SELECT d FROM unnest(j.depends_on) d
          WHERE NOT EXISTS (SELECT 1 FROM jobs c WHERE c.id = d AND c.status = 'completed')
          ORDER BY d) AS waiting_on,
    l.max_concurrent_jobs AS key_limit, coalesce(l.paused, false) AS key_paused,
    (SELECT count(*) FROM jobs r
     WHERE r.status = 'running' AND r.concurrency_key = j.concurrency_key) AS key_running,
    ARRAY(SELECT r.id FROM jobs r
          WHERE r.status = 'running' AND r.concurrency_key = j.concurrency_key
          ORDER BY r.id LIMIT 10) AS key_holders
FROM jobs j LEFT JOIN concurrency_limits l ON l.key = j.concurrency_key
WHERE j.id = %(id)s;

-- name: explain_position
-- How many eligible jobs come before this one in the claim's order (priority DESC,
-- fair_seq, id), up to a cap: queued, dependencies met, and not of a key that is paused
-- or at its limit (no room, as the claim sees it). Two ranges of the claim's index
-- (jobs_ready_idx): higher priorities, then the same priority earlier in the fair order.
WITH blocked AS (
    SELECT key FROM concurrency_room WHERE room = 0
), ahead AS (
    (SELECT 1 FROM jobs a
     WHERE a.status = 'queued' AND a.unmet_dependencies = 0 AND a.priority > %(priority)s
       AND (a.concurrency_key IS NULL OR a.concurrency_key NOT IN (SELECT key FROM blocked)))
    UNION ALL
    (SELECT 1 FROM jobs a
     WHERE a.status = 'queued' AND a.unmet_dependencies = 0 AND a.priority = %(priority)s
       AND (a.fair_seq, a.id) < (%(fair_seq)s, %(id)s)
       AND (a.concurrency_key IS NULL OR a.concurrency_key NOT IN (SELECT key FROM blocked)))
)
SELECT count(*) AS position FROM (SELECT 1 FROM ahead LIMIT %(cap)s) capped;
