"""The rules of the public API, defined once: status names and the bounds of every
value a client sends. The scheduler enforces them; the gateway and the CLI only
describe them."""

from typing import Final, Literal, get_args

Status = Literal["queued", "running", "completed", "failed", "cancelled"]
STATUSES: Final[tuple[Status, ...]] = get_args(Status)
TERMINAL_STATUSES: Final = frozenset[Status]({"completed", "failed", "cancelled"})

MAX_NAME_CHARS: Final = 255
MAX_COMMAND_BYTES: Final = 64 * 1024
MAX_ATTEMPTS: Final = 100
MAX_TIMEOUT_SECONDS: Final = 7 * 24 * 3600
MAX_JOBS_PER_BATCH: Final = 1000
DEFAULT_PAGE_SIZE: Final = 100
MAX_PAGE_SIZE: Final = 1000
MIN_CONCURRENT_JOBS: Final = 1
MAX_CONCURRENT_JOBS: Final = 10_000
# The global limit when no one has set one (the original's default).
DEFAULT_MAX_CONCURRENT_JOBS: Final = 2
