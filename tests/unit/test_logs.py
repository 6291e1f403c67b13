"""The batching log handler: lines arrive in order, warnings at once, the rest soon."""

import io
import logging
import time

from jobsched_common.logs import FLUSH_SECONDS, BatchingHandler


def _logger(stream: io.StringIO, flush_seconds: float = 60) -> logging.Logger:
    handler = BatchingHandler(stream, flush_seconds)
    handler.setFormatter(logging.Formatter("%(levelname)s %(message)s"))
    logger = logging.getLogger(f"test-batching-{id(stream)}")
    logger.handlers[:] = [handler]
    logger.propagate = False
    logger.setLevel(logging.INFO)
    return logger


def test_info_lines_wait_for_one_write_and_warnings_go_at_once() -> None:
    stream = io.StringIO()
    log = _logger(stream)
    log.info("one")
    log.info("two")
    assert stream.getvalue() == ""  # held for the next write
    log.warning("three")
    assert stream.getvalue() == "INFO one\nINFO two\nWARNING three\n"


def test_held_lines_are_written_within_the_flush_interval() -> None:
    stream = io.StringIO()
    log = _logger(stream, FLUSH_SECONDS)
    log.info("soon")
    deadline = time.monotonic() + FLUSH_SECONDS + 5
    while stream.getvalue() == "" and time.monotonic() < deadline:
        time.sleep(0.01)
    assert stream.getvalue() == "INFO soon\n"


def test_flush_writes_what_is_held() -> None:
    stream = io.StringIO()
    log = _logger(stream)
    log.info("at exit")
    for handler in log.handlers:
        handler.flush()  # what logging.shutdown does at exit
    assert stream.getvalue() == "INFO at exit\n"
