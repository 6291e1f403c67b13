"""A service's program, once started, leaves what it built out of every collection and
collects its youngest objects less often than Python's default."""

import asyncio
import gc
from collections.abc import Iterator

import pytest
from jobsched_common.lifecycle import YOUNG_OBJECTS_BEFORE_COLLECTION, run_service


@pytest.fixture
def collector_restored() -> Iterator[None]:
    thresholds = gc.get_threshold()
    yield
    gc.unfreeze()
    gc.set_threshold(*thresholds)


def test_a_service_runs_with_its_start_up_heap_frozen(collector_restored: None) -> None:
    async def program() -> tuple[int, int]:
        await asyncio.sleep(0)
        return gc.get_threshold()[0], gc.get_freeze_count()

    young, frozen = run_service(program())
    assert young == YOUNG_OBJECTS_BEFORE_COLLECTION
    assert frozen > 0
    # A cycle made while serving is still collected.
    cycle: list[object] = []
    cycle.append(cycle)
    del cycle
    assert gc.collect() >= 1
