"""Pure logic: slot planning, notification parsing, SQL loading, output capture, settings,
message batching."""

import asyncio
import random
from datetime import UTC, datetime

import pytest
from google.protobuf.timestamp_pb2 import Timestamp
from jobsched.v1 import runner_pb2 as pb
from jobsched_common.limits import MAX_BATCH_BYTES
from jobsched_common.timestamps import EPOCH, from_timestamp, to_timestamp
from jobsched_gateway.settings import Settings as GatewaySettings
from jobsched_runner.execute import CapturedOutput
from jobsched_runner.link import _drain_queue
from jobsched_scheduler.events import EventHub, new_work, parse_payload, slots_freed
from jobsched_scheduler.messages import event_message
from jobsched_scheduler.model import ClaimResult, slot_order
from jobsched_scheduler.queries import migrations, parse, queries
from jobsched_scheduler.settings import Settings as SchedulerSettings


def test_slots_fill_the_runner_with_most_free_first() -> None:
    assert sorted(slot_order({"a": 2, "b": 2}, 100)) == ["a", "a", "b", "b"]
    assert slot_order({"a": 1, "b": 3}, 100)[:2] == ["b", "b"]
    assert slot_order({"a": 8, "b": 8}, 3).count("a") in (1, 2)
    assert slot_order({"a": 0, "b": -1}, 100) == []
    assert len(slot_order({"a": 10_000, "b": 10_000}, 50)) == 50
    # One job at a time does not always land on the same runner.
    assert {slot_order({"a": 8, "b": 8}, 1)[0] for _ in range(100)} == {"a", "b"}


def test_claim_result_available_is_never_negative() -> None:
    # The limit was lowered below what runs: nothing starts until the count is under it.
    assert ClaimResult(limit=2, running=5, queued=3).available == 0
    assert ClaimResult(limit=4, running=1, queued=3).available == 3


def test_notification_payloads() -> None:
    events, config = parse_payload('[[1, "queued", 0], [2, "completed", 1]]')
    assert not config
    assert [(e.job_id, e.status, e.attempt) for e in events] == [
        (1, "queued", 0),
        (2, "completed", 1),
    ]
    assert new_work(events) and slots_freed(events)
    assert (new_work(events[1:]), slots_freed(events[1:])) == (False, True)
    running, _ = parse_payload('[[3, "running", 1]]')
    assert not new_work(running) and not slots_freed(running)
    assert parse_payload('"config"') == ([], True)


def test_every_named_query_is_loaded() -> None:
    names = set(queries())
    assert {"claim", "finish", "renew_leases", "expire_leases", "list_jobs"} <= names
    assert parse("-- name: a\n-- what a does\nSELECT 1;\n\n-- name: b\nSELECT 2;") == {
        "a": "SELECT 1;",
        "b": "SELECT 2;",
    }
    versions = [v for v, _, _ in migrations()]
    assert versions == sorted(set(versions)) and versions[0] == 1


def test_output_is_capped_and_decoded_across_chunk_boundaries() -> None:
    out = CapturedOutput(limit=10)
    snowman = "☃".encode()  # three bytes, split over two reads
    out.feed(b"ab" + snowman[:1])
    out.feed(snowman[1:] + b"cdefghijkl")
    out.feed(b"", final=True)
    assert out.take() == "ab☃cdefg"
    assert out.truncated
    assert out.kept == 10


def test_database_url_from_the_original_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DATABASE_URL", raising=False)
    for key, value in {
        "DB_HOST": "db",
        "DB_PORT": "6543",
        "DB_NAME": "jobs",
        "DB_USER": "u",
        "DB_PASSWORD": "p@ss",
    }.items():
        monkeypatch.setenv(key, value)
    assert SchedulerSettings().database_url == "postgresql://u:p%40ss@db:6543/jobs"
    monkeypatch.setenv("DATABASE_URL", "postgresql://elsewhere/x")
    assert SchedulerSettings().database_url == "postgresql://elsewhere/x"


def test_check_interval_is_read(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CHECK_INTERVAL", "3")
    assert SchedulerSettings().CHECK_INTERVAL == 3


def test_gateway_refuses_a_network_without_a_token() -> None:
    with pytest.raises(SystemExit, match="API_TOKEN"):
        GatewaySettings(GATEWAY_HOST="0.0.0.0", API_TOKEN="").check_safe()
    with pytest.raises(SystemExit):
        GatewaySettings(GATEWAY_HOST="0.0.0.0", API_TOKEN="short").check_safe()
    GatewaySettings(GATEWAY_HOST="0.0.0.0", API_TOKEN="x" * 32).check_safe()
    GatewaySettings(GATEWAY_HOST="127.0.0.1", API_TOKEN="").check_safe()
    GatewaySettings(GATEWAY_HOST="::1", API_TOKEN="").check_safe()


def test_finished_reports_back_to_back_travel_together() -> None:
    def finished(job: int) -> pb.RunnerMessage:
        return pb.RunnerMessage(finished=pb.Finished(ref=pb.AttemptRef(job_id=job, attempt=1)))

    heartbeat = pb.RunnerMessage(heartbeat=pb.Heartbeat(seq=1))

    async def sent(messages: list[pb.RunnerMessage | None]) -> list[str]:
        queue: asyncio.Queue[pb.RunnerMessage | None] = asyncio.Queue()
        for message in messages:
            queue.put_nowait(message)
        out = []
        async for message in _drain_queue(queue):
            kind = message.WhichOneof("body")
            if kind == "results":
                out.append("results:" + ",".join(str(f.ref.job_id) for f in message.results.items))
            elif kind == "finished":
                out.append(f"finished:{message.finished.ref.job_id}")
            else:
                out.append(str(kind))
        return out

    messages = [finished(1), finished(2), heartbeat, finished(3), finished(4), finished(5), None]
    assert asyncio.run(sent(messages)) == ["results:1,2", "heartbeat", "results:3,4,5"]
    assert asyncio.run(sent([finished(1), heartbeat, None])) == ["finished:1", "heartbeat"]
    assert asyncio.run(sent([heartbeat, None, heartbeat])) == ["heartbeat"]


def test_results_travel_in_batches_of_bounded_size() -> None:
    tail = b"x" * (MAX_BATCH_BYTES // 3)

    def finished(job: int) -> pb.RunnerMessage:
        ref = pb.AttemptRef(job_id=job, attempt=1)
        return pb.RunnerMessage(finished=pb.Finished(ref=ref, output_tail=tail))

    async def sent() -> list[list[int]]:
        queue: asyncio.Queue[pb.RunnerMessage | None] = asyncio.Queue()
        for message in [*map(finished, range(1, 8)), None]:
            queue.put_nowait(message)
        batches = []
        async for message in _drain_queue(queue):
            assert message.ByteSize() < MAX_BATCH_BYTES + len(tail)
            items = message.results.items if message.HasField("results") else [message.finished]
            batches.append([item.ref.job_id for item in items])
        return batches

    assert asyncio.run(sent()) == [[1, 2], [3, 4], [5, 6], [7]]


def test_timestamp_conversions_agree_with_protobufs_own() -> None:
    rng = random.Random(7)
    instants = [EPOCH, datetime(2026, 11, 29, 6, 5, 45, 999_999, tzinfo=UTC)]
    instants += [datetime.fromtimestamp(rng.uniform(-6e10, 2.5e11), UTC) for _ in range(2000)]
    for instant in instants:
        theirs = Timestamp()
        theirs.FromDatetime(instant)
        assert to_timestamp(instant) == theirs
        assert from_timestamp(theirs) == theirs.ToDatetime(tzinfo=UTC) == instant


def test_new_work_wakes_dispatch_and_ended_jobs_tell_it_slots_were_freed() -> None:
    told: list[str] = []
    hub = EventHub("", lambda: told.append("wake"), on_slots_freed=lambda: told.append("freed"))
    hub._handle('[[1, "completed", 1], [2, "failed", 3]]')
    hub._handle('[[3, "running", 1]]')
    hub._handle('[[4, "cancelled", 0], [5, "queued", 0]]')
    hub._handle('[[6, "scheduled", 0]]')
    assert told == ["freed", "wake", "wake"]


def test_a_config_change_reaches_watchers_as_an_event_of_no_job() -> None:
    woken: list[bool] = []
    hub = EventHub("", lambda: woken.append(True))
    watcher = hub.subscribe()
    hub._handle('"config"')
    event = watcher.queue.get_nowait()
    assert (event.config_changed, event.job_id, woken) == (True, 0, [True])
    assert event_message(event).config_changed
