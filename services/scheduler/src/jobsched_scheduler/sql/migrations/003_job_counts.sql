-- Job counts per status, kept by the same statement triggers that announce changes,
-- so that stats and dispatch never count rows. Sharded by backend, so that concurrent
-- transactions rarely wait on the same counter row; readers sum the shards.
CREATE TABLE job_counts (
    status VARCHAR(50) NOT NULL,
    shard SMALLINT NOT NULL,
    n BIGINT NOT NULL,
    PRIMARY KEY (status, shard)
);

INSERT INTO job_counts (status, shard, n)
SELECT coalesce(status, 'queued'), 0, count(*) FROM jobs GROUP BY 1;

CREATE FUNCTION jobsched_count(deltas JSONB) RETURNS void LANGUAGE sql AS $$
    INSERT INTO job_counts AS c (status, shard, n)
    SELECT key, pg_backend_pid() % 16, value::bigint FROM jsonb_each_text(deltas)
    ON CONFLICT (status, shard) DO UPDATE SET n = c.n + EXCLUDED.n
$$;

CREATE OR REPLACE FUNCTION jobsched_notify_inserted() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    chunk TEXT;
BEGIN
    PERFORM jobsched_count(
        (SELECT jsonb_object_agg(s, n) FROM
            (SELECT coalesce(status, 'queued') AS s, count(*) AS n FROM new_rows GROUP BY 1) c));
    FOR chunk IN
        SELECT json_agg(json_build_array(id, status, attempt))::text
        FROM (SELECT id, status, attempt, (row_number() OVER () - 1) / 200 AS part
              FROM new_rows) r
        GROUP BY part
    LOOP
        PERFORM pg_notify('jobsched_events', chunk);
    END LOOP;
    RETURN NULL;
END $$;

CREATE OR REPLACE FUNCTION jobsched_notify_changed() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    chunk TEXT;
    deltas JSONB;
BEGIN
    SELECT jsonb_object_agg(s, n) INTO deltas FROM (
        SELECT s, sum(n) AS n FROM (
            SELECT coalesce(o.status, 'queued') AS s, -1 AS n
            FROM new_rows n JOIN old_rows o USING (id) WHERE n.status IS DISTINCT FROM o.status
            UNION ALL
            SELECT coalesce(n.status, 'queued'), 1
            FROM new_rows n JOIN old_rows o USING (id) WHERE n.status IS DISTINCT FROM o.status
        ) d GROUP BY s HAVING sum(n) <> 0
    ) c;
    IF deltas IS NOT NULL THEN
        PERFORM jobsched_count(deltas);
    END IF;
    FOR chunk IN
        SELECT json_agg(json_build_array(id, status, attempt))::text
        FROM (SELECT n.id, n.status, n.attempt, (row_number() OVER () - 1) / 200 AS part
              FROM new_rows n JOIN old_rows o USING (id)
              WHERE n.status IS DISTINCT FROM o.status OR n.attempt <> o.attempt) r
        GROUP BY part
    LOOP
        PERFORM pg_notify('jobsched_events', chunk);
    END LOOP;
    RETURN NULL;
END $$;

CREATE FUNCTION jobsched_count_deleted() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM jobsched_count(
        (SELECT jsonb_object_agg(s, -n) FROM
            (SELECT coalesce(status, 'queued') AS s, count(*) AS n FROM old_rows GROUP BY 1) c));
    RETURN NULL;
END $$;

CREATE FUNCTION jobsched_count_truncated() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM job_counts;
    RETURN NULL;
END $$;

CREATE TRIGGER jobs_count_deleted AFTER DELETE ON jobs
    REFERENCING OLD TABLE AS old_rows
    FOR EACH STATEMENT EXECUTE FUNCTION jobsched_count_deleted();

CREATE TRIGGER jobs_count_truncated AFTER TRUNCATE ON jobs
    FOR EACH STATEMENT EXECUTE FUNCTION jobsched_count_truncated();
