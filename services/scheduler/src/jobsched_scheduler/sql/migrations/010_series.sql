-- The minutes of GetSeries: attempts that ended in a window or are still open, and jobs
-- that ended in it, each found by a range of one index.
CREATE INDEX job_attempts_finished_idx ON job_attempts (finished_at);
CREATE INDEX jobs_finished_idx ON jobs (finished_at) WHERE finished_at IS NOT NULL;
