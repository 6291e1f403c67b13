-- name: series
-- One row a minute, oldest first, the last being the minute now under way. An attempt
-- runs from its claim to its end (open attempts: still running); `running` is the most
-- attempts open at once during the minute, found by a sweep over their starts and ends
-- (at equal times an end comes before a start). Finished jobs count by their final
-- status in the minute they ended; waits are creation to start of first attempts.
WITH bounds AS (
    SELECT date_trunc('minute', now()) - make_interval(mins => %(minutes)s - 1) AS since
), minutes AS (
    SELECT m AS at
    FROM bounds, generate_series(bounds.since, date_trunc('minute', now()), '1 minute') m
), attempts AS (
    SELECT a.job_id, a.attempt, a.claimed_at, a.started_at, a.finished_at
    FROM job_attempts a, bounds WHERE a.finished_at >= bounds.since
    UNION ALL
    SELECT a.job_id, a.attempt, a.claimed_at, a.started_at, a.finished_at
    FROM job_attempts a WHERE a.finished_at IS NULL
), spans AS (
    SELECT greatest(a.claimed_at, b.since) AS began, a.finished_at AS ended,
           coalesce(j.concurrency_key = %(key)s::text, false) AS of_key,
           a.attempt, a.started_at, j.created_at
    FROM attempts a JOIN jobs j ON j.id = a.job_id CROSS JOIN bounds b
), steps AS (
    SELECT began AS t, 1 AS d, of_key::int AS dk FROM spans
    UNION ALL
    SELECT ended, -1, -(of_key::int) FROM spans WHERE ended IS NOT NULL
), levels AS (
    SELECT date_trunc('minute', t) AS at, d, dk,
           sum(d) OVER sweep AS level, sum(dk) OVER sweep AS key_level
    FROM steps
    WINDOW sweep AS (ORDER BY t, d ROWS UNBOUNDED PRECEDING)
), swept AS (
    SELECT at, sum(d) AS net, sum(dk) AS key_net,
           max(level) AS peak, max(key_level) AS key_peak
    FROM levels GROUP BY at
), ended AS (
    SELECT date_trunc('minute', finished_at) AS at,
           count(*) FILTER (WHERE status = 'completed') AS completed,
           count(*) FILTER (WHERE status = 'failed') AS failed,
           count(*) FILTER (WHERE status = 'cancelled') AS cancelled
    FROM jobs, bounds
    WHERE finished_at >= bounds.since AND status IN ('completed', 'failed', 'cancelled')
    GROUP BY 1
), waits AS (
    SELECT date_trunc('minute', s.started_at) AS at,
           percentile_cont(0.5) WITHIN GROUP (
               ORDER BY extract(epoch FROM s.started_at - s.created_at)::float8) AS p50,
           percentile_cont(0.95) WITHIN GROUP (
               ORDER BY extract(epoch FROM s.started_at - s.created_at)::float8) AS p95
    FROM spans s, bounds WHERE s.attempt = 1 AND s.started_at >= bounds.since
    GROUP BY 1
)
SELECT m.at,
       greatest(coalesce(sum(w.net) OVER earlier, 0), coalesce(w.peak, 0))::bigint AS running,
       coalesce((SELECT value::integer FROM scheduler_config WHERE key = 'max_concurrent_jobs'),
                %(default_limit)s) AS "limit",
       greatest(coalesce(sum(w.key_net) OVER earlier, 0), coalesce(w.key_peak, 0))::bigint
           AS key_running,
       (SELECT max_concurrent_jobs FROM concurrency_limits WHERE key = %(key)s::text)
           AS key_limit,
       coalesce(e.completed, 0) AS completed, coalesce(e.failed, 0) AS failed,
       coalesce(e.cancelled, 0) AS cancelled,
       coalesce(q.p50, 0) AS wait_p50_seconds, coalesce(q.p95, 0) AS wait_p95_seconds
FROM minutes m
LEFT JOIN swept w USING (at) LEFT JOIN ended e USING (at) LEFT JOIN waits q USING (at)
WINDOW earlier AS (ORDER BY m.at ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING)
ORDER BY m.at;
