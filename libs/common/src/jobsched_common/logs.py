"""Log lines in the original daemon's format, tagged with the service name, or JSON
lines with LOG_FORMAT=json. A record logged with `extra={"job_id": n}` carries it."""

import json
import logging
import sys
import threading
from datetime import UTC, datetime
from typing import TextIO

DATE_FORMAT = "%Y/%m/%d %H:%M:%S"
# Informational lines wait at most this long, to go out together in one write: a busy
# runner logs a few lines per job, and a write per line costs it a tenth of its time.
FLUSH_SECONDS = 0.1
MAX_BUFFERED_LINES = 1000


class TextFormatter(logging.Formatter):
    def __init__(self, service: str):
        super().__init__(f"%(asctime)s {service} %(levelname)s %(message)s", DATE_FORMAT)

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        job_id = getattr(record, "job_id", None)
        return line if job_id is None else f"{line} job={job_id}"


class JsonFormatter(logging.Formatter):
    def __init__(self, service: str):
        super().__init__()
        self.service = service

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, object] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(),
            "level": record.levelname,
            "service": self.service,
            "logger": record.name,
            "message": record.getMessage(),
        }
        job_id = getattr(record, "job_id", None)
        if job_id is not None:
            entry["job_id"] = job_id
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry)


class BatchingHandler(logging.StreamHandler[TextIO]):
    """Writes lines in batches, at most FLUSH_SECONDS late, in order. A warning or
    worse goes out at once, with everything before it; so does what is left at exit
    (logging.shutdown flushes every handler)."""

    def __init__(self, stream: TextIO, flush_seconds: float = FLUSH_SECONDS):
        super().__init__(stream)
        self.flush_seconds = flush_seconds
        self._lines: list[str] = []
        self._timer: threading.Timer | None = None
        self._guard = threading.RLock()

    def emit(self, record: logging.LogRecord) -> None:
        try:
            line = self.format(record)
        except Exception:
            self.handleError(record)
            return
        with self._guard:
            self._lines.append(line)
            if record.levelno >= logging.WARNING or len(self._lines) >= MAX_BUFFERED_LINES:
                self._write()
            elif self._timer is None:
                self._timer = threading.Timer(self.flush_seconds, self.flush)
                self._timer.daemon = True
                self._timer.start()

    def flush(self) -> None:
        with self._guard:
            self._write()

    def _write(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self._lines:
            text = "\n".join(self._lines) + "\n"
            self._lines.clear()
            try:
                self.stream.write(text)
                self.stream.flush()
            except (OSError, ValueError):  # the stream is gone: nothing to tell it
                pass


def setup_logging(service: str, level: str = "INFO", fmt: str = "text") -> None:
    if fmt not in ("text", "json"):
        raise SystemExit(f"LOG_FORMAT must be text or json, not {fmt!r}")
    handler = BatchingHandler(sys.stderr)
    handler.setFormatter(JsonFormatter(service) if fmt == "json" else TextFormatter(service))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # uvicorn configures its own loggers unless told not to; route them through ours.
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        logging.getLogger(name).handlers[:] = []
        logging.getLogger(name).propagate = True
