"""The gateway's coalescing of concurrent creates: a lone create goes out at once as
CreateJob; creates that arrive while calls are in flight share the next call, and each
caller gets its own job or its own error, never another caller's."""

import asyncio
from typing import Any

import grpc
import pytest
from jobsched.v1 import jobs_pb2 as pb
from jobsched_gateway import create_coalesce
from jobsched_gateway.create_coalesce import CreateCoalescer

pytestmark = pytest.mark.timeout(10)
EXISTS = grpc.StatusCode.ALREADY_EXISTS


class HeldScheduler:
    """Holds each call until the test lets it go; answers CreateJobs item by item, a
    name starting with `taken` refused as the scheduler would refuse it."""

    def __init__(self, metadata: tuple[tuple[str, str], ...] = ()) -> None:
        self.metadata = metadata
        self.calls: list[tuple[str, Any]] = []
        self.release = asyncio.Event()
        self.fail: BaseException | None = None

    async def call(self, method: str, request: Any) -> Any:
        self.calls.append((method, request))
        await self.release.wait()
        if self.fail is not None:
            raise self.fail
        if method == "CreateJob":
            return pb.Job(id=len(self.calls), name=request.name)
        return pb.CreateJobsResponse(results=[self._result(r) for r in request.jobs])

    def _result(self, request: pb.CreateJobRequest) -> pb.CreateJobResult:
        if request.name.startswith("taken"):
            refusal = pb.Refusal(code=EXISTS.value[0], message=f"'{request.name}' exists")
            return pb.CreateJobResult(refusal=refusal)
        return pb.CreateJobResult(job=pb.Job(id=hash(request.name) % 1000, name=request.name))


def create(name: str) -> pb.CreateJobRequest:
    return pb.CreateJobRequest(name=name, command="true")


async def settle() -> None:
    """Lets every ready task run up to its next wait."""
    for _ in range(5):
        await asyncio.sleep(0)


def test_a_lone_create_goes_out_at_once_as_create_job() -> None:
    async def scenario() -> None:
        scheduler = HeldScheduler()
        scheduler.release.set()
        job = await CreateCoalescer().create(scheduler, create("one"))
        assert job.name == "one"
        assert [method for method, _ in scheduler.calls] == ["CreateJob"]

    asyncio.run(scenario())


def test_creates_waiting_behind_calls_in_flight_share_one_call_each_answered_alone() -> None:
    async def scenario() -> None:
        scheduler = HeldScheduler()
        coalescer = CreateCoalescer(flights=1)
        first = asyncio.create_task(coalescer.create(scheduler, create("first")))
        await settle()
        names = ["a", "taken-1", "b", "taken-2"]
        rest = [asyncio.create_task(coalescer.create(scheduler, create(n))) for n in names]
        await settle()
        assert [method for method, _ in scheduler.calls] == ["CreateJob"]
        scheduler.release.set()
        assert (await first).name == "first"
        outcomes = await asyncio.gather(*rest, return_exceptions=True)
        method, request = scheduler.calls[1]
        assert method == "CreateJobs" and request.each_alone
        assert [r.name for r in request.jobs] == names
        a, taken_1, b, taken_2 = outcomes
        assert isinstance(a, pb.Job) and isinstance(b, pb.Job)
        assert (a.name, b.name) == ("a", "b")
        for refused, name in ((taken_1, "taken-1"), (taken_2, "taken-2")):
            assert isinstance(refused, grpc.aio.AioRpcError)
            assert refused.code() == EXISTS and refused.details() == f"'{name}' exists"
        assert len(scheduler.calls) == 2 and not coalescer._batchers

    asyncio.run(scenario())


def test_callers_with_different_credentials_never_share_a_call() -> None:
    async def scenario() -> None:
        ci = HeldScheduler((("authorization", "Bearer ci"),))
        ops = HeldScheduler((("authorization", "Bearer ops"),))
        coalescer = CreateCoalescer(flights=1)
        tasks = [
            asyncio.create_task(coalescer.create(client, create(f"{who}-{n}")))
            for n in range(3)
            for who, client in (("ci", ci), ("ops", ops))
        ]
        await settle()
        ci.release.set()
        ops.release.set()
        jobs = await asyncio.gather(*tasks)
        assert [job.name for job in jobs] == ["ci-0", "ops-0", "ci-1", "ops-1", "ci-2", "ops-2"]
        for who, client in (("ci", ci), ("ops", ops)):
            assert [method for method, _ in client.calls] == ["CreateJobs"]
            assert [r.name for r in client.calls[0][1].jobs] == [f"{who}-{n}" for n in range(3)]

    asyncio.run(scenario())


def test_a_failed_call_fails_each_of_its_creates_and_the_next_call_is_made() -> None:
    async def scenario() -> None:
        scheduler = HeldScheduler()
        coalescer = CreateCoalescer(flights=1)
        tasks = [asyncio.create_task(coalescer.create(scheduler, create(n))) for n in "abc"]
        await settle()
        scheduler.fail = RuntimeError("scheduler away")
        scheduler.release.set()
        outcomes = await asyncio.gather(*tasks, return_exceptions=True)
        assert all(isinstance(o, RuntimeError) for o in outcomes)
        scheduler.fail = None
        assert (await coalescer.create(scheduler, create("d"))).name == "d"

    asyncio.run(scenario())


def test_a_batch_ends_before_its_byte_budget(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(create_coalesce, "BATCH_BYTES", 100)

    async def scenario() -> None:
        scheduler = HeldScheduler()
        coalescer = CreateCoalescer(flights=1)
        held = asyncio.create_task(coalescer.create(scheduler, create("held")))
        await settle()
        big = [pb.CreateJobRequest(name=f"big-{n}", command="x" * 30) for n in range(3)]
        assert all(30 < r.ByteSize() <= 50 for r in big)  # two fit in 100 bytes, three do not
        tasks = [asyncio.create_task(coalescer.create(scheduler, r)) for r in big]
        await settle()
        scheduler.release.set()
        await asyncio.gather(held, *tasks)
        methods = [method for method, _ in scheduler.calls]
        assert methods == ["CreateJob", "CreateJobs", "CreateJob"]
        assert [r.name for r in scheduler.calls[1][1].jobs] == ["big-0", "big-1"]
        assert scheduler.calls[2][1].name == "big-2"

    asyncio.run(scenario())
