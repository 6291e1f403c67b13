-- Search and retention: find jobs by a piece of their name or command, and delete old
-- finished ones (by hand or by the retention sweep) with their attempts and output.

-- Trigrams answer a substring search from an index: every three characters in a row of
-- a job's name and command (lower case) are an element of an array, and a GIN index on
-- that array finds the jobs that hold every trigram of the text searched for. Our own
-- function rather than pg_trgm: the embedded PostgreSQL of `make run` ships without it.
-- The characters are read once, in order (`substr` at each position would read the text
-- from its start every time: a 64 KiB command took seconds).
CREATE FUNCTION jobsched_trigrams(t TEXT) RETURNS TEXT[]
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE AS $$
    SELECT ARRAY(SELECT DISTINCT g FROM (
        SELECT c || lead(c, 1) OVER w || lead(c, 2) OVER w AS g
        FROM unnest(string_to_array(lower(t), NULL)) WITH ORDINALITY AS u(c, n)
        WINDOW w AS (ORDER BY n)) x WHERE g IS NOT NULL)
$$;

-- The trigrams live in a table of their own, written when a job is inserted (or its name
-- or command changed by hand), not in `jobs`: every claim and finish updates a job's row,
-- and an index on `jobs` would take each new row version's forty-odd trigrams again. A
-- search then reads the trigrams, and checks name and command themselves (bulk.sql,
-- `search_jobs`).
CREATE TABLE job_search (
    job_id INTEGER PRIMARY KEY REFERENCES jobs (id) ON DELETE CASCADE,
    trigrams TEXT[] NOT NULL
);
INSERT INTO job_search SELECT id, jobsched_trigrams(name || ' ' || command) FROM jobs;
CREATE INDEX job_search_trigrams_idx ON job_search USING gin (trigrams);

-- The trigrams a search looks up: those of the text, less the ones that more than 2% of
-- jobs hold (as ANALYZE last counted them), which narrow the candidates little and cost
-- the most to read; all of them when every one is that common. Name and command decide
-- in the end, so fewer trigrams only let more candidates through.
CREATE FUNCTION jobsched_search_keys(t TEXT) RETURNS TEXT[]
LANGUAGE sql STABLE STRICT AS $$
    WITH wanted AS (SELECT DISTINCT k FROM unnest(jobsched_trigrams(t)) AS k),
    common AS (
        SELECT e.k FROM pg_stats s,
             unnest(s.most_common_elems::text::text[], s.most_common_elem_freqs) AS e(k, f)
        WHERE s.schemaname = current_schema() AND s.tablename = 'job_search'
          AND s.attname = 'trigrams' AND e.f > 0.02
    ), rare AS (SELECT k FROM wanted WHERE k NOT IN (SELECT k FROM common WHERE k IS NOT NULL))
    SELECT CASE WHEN EXISTS (SELECT 1 FROM rare) THEN ARRAY(SELECT k FROM rare)
                ELSE ARRAY(SELECT k FROM wanted) END
$$;

CREATE FUNCTION jobsched_index_inserted() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO job_search SELECT id, jobsched_trigrams(name || ' ' || command) FROM new_rows;
    RETURN NULL;
END $$;

CREATE TRIGGER jobs_index_inserted AFTER INSERT ON jobs
    REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION jobsched_index_inserted();

CREATE FUNCTION jobsched_index_renamed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE job_search SET trigrams = jobsched_trigrams(NEW.name || ' ' || NEW.command)
    WHERE job_id = NEW.id;
    RETURN NULL;
END $$;

CREATE TRIGGER jobs_index_renamed AFTER UPDATE OF name, command ON jobs
    FOR EACH ROW WHEN (OLD.name IS DISTINCT FROM NEW.name OR OLD.command IS DISTINCT FROM NEW.command)
    EXECUTE FUNCTION jobsched_index_renamed();

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
