"""What the fault tests share."""

import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from jobsched_launcher import embedded_postgres


@pytest.fixture
def own_postgres() -> Iterator[object]:
    """A server of this test's own, so that it may be stopped and started."""
    with tempfile.TemporaryDirectory(prefix="jobsched-pg-own-") as tmp:
        server = embedded_postgres(Path(tmp) / "data")
        try:
            yield server
        finally:
            server.cleanup()
