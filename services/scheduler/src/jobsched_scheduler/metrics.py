"""The scheduler's Prometheus metrics."""

from prometheus_client import Counter, Gauge, Histogram

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)
DURATION_BUCKETS = (0.01, 0.05, 0.1, 0.5, 1, 5, 10, 30, 60, 300, 900, 3600, 14400)

JOBS_CREATED = Counter("jobsched_jobs_created_total", "Jobs created through the API")
JOBS_STARTED = Counter("jobsched_jobs_started_total", "Attempts assigned to runners")
JOBS_FINISHED = Counter(
    "jobsched_jobs_finished_total", "Attempts ended, by the job's new status", ["status"]
)
QUEUE_DEPTH = Gauge("jobsched_queue_depth", "Queued jobs at the last dispatch cycle")
RUNNING = Gauge("jobsched_jobs_running", "Running jobs at the last dispatch cycle")
LIMIT = Gauge("jobsched_max_concurrent_jobs", "The concurrency limit at the last cycle")
RUNNERS = Gauge("jobsched_runners_connected", "Runners connected to this scheduler")
ENQUEUE_TO_START = Histogram(
    "jobsched_enqueue_to_start_seconds",
    "From a job's creation to its first attempt's start, as the runner reports it",
    buckets=LATENCY_BUCKETS,
)
DURATION = Histogram(
    "jobsched_job_duration_seconds", "How long attempts ran", buckets=DURATION_BUCKETS
)
