-- The minutes of GetSeries: attempts that ended in a window or are still open, and jobs
-- that ended in it, each found by a range of one index.
CREATE INDEX job_attempts_finished_idx ON job_attempts (finished_at);
CREATE INDEX jobs_finished_idx ON jobs (finished_at) WHERE finished_at IS NOT NULL;

-- The claim's index carries each job's key, so that ExplainJob counts the eligible jobs
-- ahead of one (skipping keys that are paused or full) from the index alone.
DROP INDEX jobs_ready_idx;
CREATE INDEX jobs_ready_idx ON jobs (priority DESC, fair_seq, id) INCLUDE (concurrency_key)
    WHERE status = 'queued' AND unmet_dependencies = 0;
