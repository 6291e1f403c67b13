"""Runner authentication and the runner fence on the scheduler's side of the link, with
a fake stream: no credential or another runner's name registers nothing, and a runner's
reports and heartbeats on an attempt given to another runner change nothing."""

import asyncio
import logging
from pathlib import Path

import grpc
import pytest
from jobsched.v1 import runner_pb2 as pb
from jobsched_scheduler.model import AttemptKey
from jobsched_scheduler.runner_auth import (
    NotThisRunner,
    RunnerAuth,
    RunnerToken,
    Unauthenticated,
    find_token,
    parse_tokens,
    permit,
    read_tokens_file,
)

from tests.unit.test_scheduler_runner_link import (
    TOKEN,
    Aborted,
    FakeContext,
    Stream,
    assigned,
    finished,
    keys,
    ref,
    register,
    scheduler,
)
from tests.unit.waiting import until


@pytest.mark.parametrize(
    ("runner_id", "context", "code"),
    [
        ("r1", FakeContext(None), grpc.StatusCode.UNAUTHENTICATED),
        ("r1", FakeContext(None, (("authorization", "Bearer wrong-token-12345678"),)), None),
        ("r1", FakeContext(None, (("authorization", f"Basic {TOKEN}"),)), None),
        ("r1", FakeContext("r2"), grpc.StatusCode.PERMISSION_DENIED),
        ("r1", FakeContext("r1-evil"), grpc.StatusCode.PERMISSION_DENIED),
        ("r1", FakeContext(None, (("authorization", f"Bearer {TOKEN}"),)), None),
    ],
    ids=["nothing", "wrong token", "not bearer", "other cert", "prefix", "other token"],
)
def test_a_rogue_registers_nothing_and_ends_nothing(
    runner_id: str, context: FakeContext, code: grpc.StatusCode | None
) -> None:
    async def scenario() -> None:
        s = await scheduler(jobs=1)
        [claimed] = (await s.store.claim({"r1": 1})).by_runner["r1"]
        stream = Stream(s.links, register(runner_id, 10_000), context)
        with pytest.raises(Aborted) as aborted:
            await asyncio.wait_for(stream.call, 1)
        if code is None:  # a token that is wrong, or names another runner
            assert aborted.value.args[0] in {
                grpc.StatusCode.UNAUTHENTICATED,
                grpc.StatusCode.PERMISSION_DENIED,
            }
        else:
            assert aborted.value.args[0] == code
        assert stream.received == [] and s.dispatcher.runners == {}
        # r1's attempt was not ended as "not held" by a registration in its name.
        assert s.store.jobs[claimed.key.job_id].status == "running"
        assert s.store.calls["expire_unheld"] == 0
        await s.close()

    asyncio.run(scenario())


@pytest.mark.parametrize("runner_id", ["tokened", "tokened/host-1"])
def test_a_token_registers_its_name_or_a_replica_of_it(runner_id: str) -> None:
    async def scenario() -> None:
        s = await scheduler(jobs=0)
        context = FakeContext(None, (("authorization", f"Bearer {TOKEN}"),))
        stream = Stream(s.links, register(runner_id, 2), context)
        await stream.expect("registered")
        assert set(s.dispatcher.runners) == {runner_id}
        await stream.hang_up()
        await s.close()

    asyncio.run(scenario())


def test_a_report_on_another_runners_attempt_changes_nothing(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async def scenario() -> None:
        s = await scheduler(jobs=1)
        r1 = s.connect("r1", 1)
        await r1.expect("registered")
        [key] = await assigned(s, r1)
        r2 = s.connect("r2", 1)
        await r2.expect("registered")
        r2.send(started=_started(key))
        r2.send(output=_output(key, b"forged"))
        r2.send(finished=finished(key, exit_code=0, tail=b"forged"))
        # Acknowledged, so that it is not sent again; stored, never.
        [acked] = await r2.expect("acked")
        assert keys(acked.refs) == {key}
        job, attempt = s.store.jobs[key.job_id], s.store.attempts[key]
        assert (job.status, job.started_at, attempt.output) == ("running", None, "")
        assert s.dispatcher.runners["r1"].active == {key}
        # Its own runner's finish still counts.
        r1.send(finished=finished(key, exit_code=0, tail=b"real"))
        [acked] = await r1.expect("acked")
        assert (job.status, attempt.output) == ("completed", "real")
        for stream in (r1, r2):
            await stream.hang_up()
        await s.close()

    with caplog.at_level(logging.WARNING):
        asyncio.run(scenario())
    assert "report from runner r2 refused, the attempt is runner r1's" in caplog.text


def test_a_heartbeat_from_another_runner_renews_nothing() -> None:
    async def scenario() -> None:
        s = await scheduler(jobs=1)
        r1 = s.connect("r1", 1)
        await r1.expect("registered")
        [key] = await assigned(s, r1)
        r2 = s.connect("r2", 1)
        await r2.expect("registered")
        expires = s.store.jobs[key.job_id].lease_expires_at
        s.store.advance(5)
        r2.send(heartbeat=_heartbeat(key))
        [renewed] = await r2.expect("renewed")
        assert list(renewed.refs) == []
        assert s.store.jobs[key.job_id].lease_expires_at == expires
        assert s.store.jobs[key.job_id].runner_id == "r1"
        r1.send(heartbeat=_heartbeat(key))
        [renewed] = await r1.expect("renewed")
        assert keys(renewed.refs) == {key}
        await until(lambda: s.store.jobs[key.job_id].lease_expires_at != expires, "renewed")
        for stream in (r1, r2):
            await stream.hang_up()
        await s.close()

    asyncio.run(scenario())


def _started(key: AttemptKey) -> pb.Started:
    return pb.Started(ref=ref(key))


def _output(key: AttemptKey, data: bytes) -> pb.OutputChunk:
    return pb.OutputChunk(ref=ref(key), data=data)


def _heartbeat(key: AttemptKey) -> pb.Heartbeat:
    return pb.Heartbeat(seq=1, running=[ref(key)])


def test_tokens_parse_from_the_env_and_a_file(tmp_path: Path) -> None:
    assert parse_tokens(" a:0123456789abcdef , b:fedcba9876543210", "X") == [
        RunnerToken("a", "0123456789abcdef"),
        RunnerToken("b", "fedcba9876543210"),
    ]
    path = tmp_path / "tokens"
    path.write_text("# runners\nc 0123456789abcdef\nd:fedcba9876543210  # rotated in\n")
    assert [t.name for t in read_tokens_file(str(path))] == ["c", "d"]
    assert "0123456789abcdef" not in repr(read_tokens_file(str(path)))


@pytest.mark.parametrize(
    "text", ["nosecret", "a:short", ":0123456789abcdef", "a/b:0123456789abcdef", "a:changeme"]
)
def test_bad_tokens_are_refused_at_start(text: str) -> None:
    with pytest.raises(ValueError):
        parse_tokens(text, "RUNNER_TOKENS")


def test_the_tokens_file_is_read_at_every_connect(tmp_path: Path) -> None:
    path = tmp_path / "tokens"
    path.write_text("old 0123456789abcdef\n")
    auth = RunnerAuth([], str(path))
    bearer = (("authorization", "Bearer fedcba9876543210"),)
    with pytest.raises(Unauthenticated):
        auth.identify(bearer, {})
    path.write_text("old 0123456789abcdef\nnew fedcba9876543210\n")  # rotation: both valid
    assert auth.identify(bearer, {}) == "new"
    assert auth.identify(bearer, {"x509_common_name": [b"certified"]}) == "certified"


def test_a_runner_id_is_its_credentials_name_or_under_it() -> None:
    permit("a", "a")
    permit("a", "a/host-1")
    for runner_id in ("b", "ab", "a-1", "/a", "b/a"):
        with pytest.raises(NotThisRunner):
            permit("a", runner_id)
    tokens = [RunnerToken("a", "0123456789abcdef")]
    assert find_token(tokens, "0123456789abcdef") == tokens[0]
    assert find_token(tokens, "0123456789abcde") is None
