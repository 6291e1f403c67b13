"""The runner's drain, over an in-memory stream with fake commands: no new work, jobs
let finish within the grace, the rest stopped, results acknowledged or warned about."""

import asyncio
from collections.abc import Awaitable, Callable

import pytest
from jobsched_runner import agent
from jobsched_runner.agent import RunnerAgent

from tests.unit.runner_fakes import (
    FakeLauncher,
    FakeScheduler,
    FakeStream,
    acked,
    assign,
    keys_of,
    registered,
    settings,
)
from tests.unit.waiting import until

Scenario = Callable[[RunnerAgent, FakeStream, FakeLauncher, asyncio.Event], Awaitable[None]]


def run(drain_seconds: float, scenario: Scenario) -> None:
    async def main() -> None:
        scheduler = FakeScheduler()
        launcher = FakeLauncher()
        runner = RunnerAgent(
            settings(RUNNER_DRAIN_SECONDS=drain_seconds),
            transport=scheduler.connect,
            launch=launcher,
        )
        stop = asyncio.Event()
        running = asyncio.create_task(runner.run(stop))
        await until(lambda: scheduler.streams != [], "a stream")
        stream = scheduler.stream
        stream.answer(registered())
        stream.answer(assign((1, 1), (2, 1)))
        await until(lambda: len(launcher.launched) == 2, "started")
        await scenario(runner, stream, launcher, stop)
        await asyncio.wait_for(running, 5)

    asyncio.run(main())


def finished(stream: FakeStream) -> list[tuple[int, int]]:
    keys = []
    for message in stream.sent:
        if message.HasField("finished"):
            keys += keys_of([message.finished.ref])
        elif message.HasField("results"):
            keys += keys_of(item.ref for item in message.results.items)
    return keys


def test_jobs_that_end_within_the_grace_are_not_stopped(caplog: pytest.LogCaptureFixture) -> None:
    async def scenario(
        runner: RunnerAgent, stream: FakeStream, launcher: FakeLauncher, stop: asyncio.Event
    ) -> None:
        stop.set()
        await until(lambda: "draining" in stream.kinds(), "draining sent")
        launcher.of((1, 1)).end(0)
        launcher.of((2, 1)).end(3)
        await until(lambda: sorted(finished(stream)) == [(1, 1), (2, 1)], "finished")
        assert not launcher.of((2, 1)).stopping
        assert runner.jobs.unacked[(2, 1)].exit_code == 3
        stream.answer(acked((1, 1), (2, 1)))

    run(30.0, scenario)
    assert "unacknowledged" not in caplog.text


def test_a_drain_waits_for_the_last_acknowledgements(caplog: pytest.LogCaptureFixture) -> None:
    async def scenario(
        runner: RunnerAgent, stream: FakeStream, launcher: FakeLauncher, stop: asyncio.Event
    ) -> None:
        launcher.of((1, 1)).end(0)
        launcher.of((2, 1)).end(0)
        await until(lambda: sorted(finished(stream)) == [(1, 1), (2, 1)], "finished")
        # Nothing runs: the drain goes straight to waiting for the acknowledgements.
        stop.set()
        await until(lambda: "draining" in stream.kinds(), "draining sent")
        stream.answer(acked((1, 1), (2, 1)))

    run(30.0, scenario)
    assert "unacknowledged" not in caplog.text


def test_jobs_past_the_grace_are_stopped_and_unacknowledged_results_warned_about(
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(agent, "ACK_WAIT_SECONDS", 0.1)

    async def scenario(
        runner: RunnerAgent, stream: FakeStream, launcher: FakeLauncher, stop: asyncio.Event
    ) -> None:
        launcher.of((1, 1)).end(0)
        await until(lambda: finished(stream) == [(1, 1)], "finished")
        stream.answer(acked((1, 1)))
        stop.set()
        await until(lambda: finished(stream) == [(1, 1), (2, 1)], "stopped")
        assert launcher.of((2, 1)).stop_reason == "runner shut down"
        assert "draining" in stream.kinds()

    run(0.05, scenario)
    assert "Stopping with 1 unacknowledged result(s)" in caplog.text
