"""The rules of the public API, defined once: status names and the bounds of every
value a client sends. The scheduler enforces them; the gateway and the CLI only
describe them."""

from typing import Final, Literal, get_args

Status = Literal["queued", "running", "completed", "failed", "cancelled", "scheduled"]
STATUSES: Final[tuple[Status, ...]] = get_args(Status)
TERMINAL_STATUSES: Final = frozenset[Status]({"completed", "failed", "cancelled"})
# Not started yet: waiting for a slot, a dependency or its time.
WAITING_STATUSES: Final = frozenset[Status]({"queued", "scheduled"})

MAX_NAME_CHARS: Final = 255
MAX_COMMAND_BYTES: Final = 64 * 1024
MAX_ATTEMPTS: Final = 100
MAX_TIMEOUT_SECONDS: Final = 7 * 24 * 3600
MAX_JOBS_PER_BATCH: Final = 1000
DEFAULT_PAGE_SIZE: Final = 100
MAX_PAGE_SIZE: Final = 1000
# A page of jobs ends early, before this many bytes of messages, and the next page goes
# on from there: 1000 jobs of 64 KiB commands would not fit any reply.
MAX_PAGE_BYTES: Final = 2 * 1024 * 1024
# The most output an attempt may keep (OUTPUT_LIMIT_BYTES), and the largest message
# either end of a gRPC call must accept: an attempt's output, or a result carrying the
# last part of it, with room to spare (gRPC's own default is 4 MiB).
MAX_OUTPUT_BYTES: Final = 32 * 1024 * 1024
MAX_MESSAGE_BYTES: Final = 2 * MAX_OUTPUT_BYTES
# Messages that batch many items (assignments, results) are cut before this many bytes.
MAX_BATCH_BYTES: Final = 1024 * 1024
MIN_CONCURRENT_JOBS: Final = 1
MAX_CONCURRENT_JOBS: Final = 10_000
# The global limit when no one has set one (the original's default).
DEFAULT_MAX_CONCURRENT_JOBS: Final = 2

MIN_PRIORITY: Final = -100
MAX_PRIORITY: Final = 100
# A job's run_at may be this far ahead at most (about ten years), and so its delay.
MAX_DELAY_SECONDS: Final = 3653 * 24 * 3600
MAX_DEPENDENCIES: Final = 100

# A schedule's jobs are named "{schedule}@{time}": its name leaves room for the time.
MAX_SCHEDULE_NAME_CHARS: Final = 200
MAX_EVERY_SECONDS: Final = 366 * 24 * 3600
DEFAULT_CATCHUP_WINDOW_SECONDS: Final = 60
MAX_CATCHUP_WINDOW_SECONDS: Final = 7 * 24 * 3600
MAX_CRON_CHARS: Final = 255

# A concurrency key, and the limit a key may have.
MAX_KEY_CHARS: Final = 255
MIN_KEY_LIMIT: Final = 1
MAX_KEY_LIMIT: Final = 10_000
# The series of the last minutes (GetSeries): its window when none is given, and at most.
DEFAULT_SERIES_WINDOW_SECONDS: Final = 3600
MAX_SERIES_WINDOW_SECONDS: Final = 86_400
