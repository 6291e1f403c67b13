-- Search and retention: find jobs by a piece of their name or command, and delete old
-- finished ones (by hand or by the retention sweep) with their attempts and output.

-- Trigrams answer a substring search from an index: every three characters in a row of
-- a job's name and command (lower case) are an element of one array, and a GIN index on
-- that array finds the jobs that hold every trigram of the text searched for. Our own
-- function rather than pg_trgm: the embedded PostgreSQL of `make run` ships without it.
-- One index over name and command together: one entry a job to write on insert, not
-- two. Name and command themselves then decide (bulk.sql, `search_jobs`).
CREATE FUNCTION jobsched_trigrams(t TEXT) RETURNS TEXT[]
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE AS $$
    SELECT coalesce(array_agg(DISTINCT substr(l, i, 3)), '{}')
    FROM (SELECT lower(t) AS l) x, generate_series(1, length(x.l) - 2) AS i
$$;

CREATE INDEX jobs_search_idx ON jobs USING gin (jobsched_trigrams(name || ' ' || command));

-- The retention sweep's oldest finished jobs of one status, by when they finished.
CREATE INDEX jobs_retention_idx ON jobs (status, finished_at)
    WHERE status IN ('completed', 'failed', 'cancelled');

-- A deleted job is announced as its changes are, with the status `deleted`, so that
-- watchers (the dashboard) drop it; the counters lose it as before.
CREATE OR REPLACE FUNCTION jobsched_count_deleted() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    chunk TEXT;
BEGIN
    PERFORM jobsched_count(
        (SELECT jsonb_object_agg(s, -n) FROM
            (SELECT coalesce(status, 'queued') AS s, count(*) AS n FROM old_rows GROUP BY 1) c));
    FOR chunk IN
        SELECT json_agg(json_build_array(id, 'deleted', attempt))::text
        FROM (SELECT id, attempt, (row_number() OVER () - 1) / 200 AS part FROM old_rows) r
        GROUP BY part
    LOOP
        PERFORM pg_notify('jobsched_events', chunk);
    END LOOP;
    RETURN NULL;
END $$;
