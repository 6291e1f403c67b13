-- A job as the API shows it: JobRow's columns in its order, and times a client cannot
-- hold read as NULL (unset). PostgreSQL keeps times from 4713 BC to 294276 AD and
-- ±infinity, which only SQL by hand can set; a page that holds such a row then shows it
-- without those times instead of failing. Reads select from this view, so that every
-- time they return loads as a datetime.
-- (A view on `jobs` must be dropped and made again by a migration that changes the
-- type of a column it shows.)
CREATE FUNCTION jobsched_api_time(t TIMESTAMPTZ) RETURNS TIMESTAMPTZ
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT CASE WHEN t >= '0001-01-01 00:00:00+00' AND t < '10000-01-01 00:00:00+00'
                THEN t END
$$;

CREATE VIEW api_jobs AS
SELECT id, name, command, status,
       jobsched_api_time(last_run) AS last_run,
       jobsched_api_time(created_at) AS created_at,
       jobsched_api_time(updated_at) AS updated_at,
       attempt, max_attempts, timeout_seconds, runner_id,
       jobsched_api_time(started_at) AS started_at,
       jobsched_api_time(finished_at) AS finished_at,
       exit_code, reason
FROM jobs;
