"""Watchers never miss an end: PostgreSQL restarts while a watched job finishes; the
scheduler's listener reconnects, and both a gRPC `WatchEvents` stream and the
gateway's event stream say `resync`, after which re-reading shows the job completed."""

import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest
from jobsched_launcher import wait_for

from tests.checker import History, logged_command
from tests.conftest import start_live_system
from tests.faults.test_faults import create

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(180)]


# A WatchEvents client in a process of its own: gRPC threads in this one would break
# the fork of the PostgreSQL server's pg_ctl ("skipping fork() handlers").
WATCH = """
import sys
import grpc
from jobsched.v1 import jobs_pb2 as pb, jobs_pb2_grpc
channel = grpc.insecure_channel(sys.argv[1])
for event in jobs_pb2_grpc.JobServiceStub(channel).WatchEvents(pb.WatchEventsRequest()):
    print("resync" if event.resync else f"job {event.job_id} {event.status}", flush=True)
"""


class GrpcWatcher:
    """Collects WatchEvents from the scheduler, one line each."""

    def __init__(self, addr: str):
        self.events: list[str] = []
        self._proc = subprocess.Popen(
            [sys.executable, "-c", WATCH, addr], stdout=subprocess.PIPE, text=True
        )
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self._proc.stdout is not None
        for line in self._proc.stdout:
            self.events.append(line.strip())

    def resyncs(self) -> int:
        return self.events.count("resync")

    def close(self) -> None:
        self._proc.kill()
        self._proc.wait()
        if self._proc.stdout is not None:
            self._proc.stdout.close()


class SseWatcher:
    """Collects the gateway's server-sent events (name, then data), in a thread of its
    own."""

    def __init__(self, url: str):
        self.names: list[str] = []
        self.running_seen = False  # a job event said `running`
        self._closed = threading.Event()
        threading.Thread(target=self._read, args=(url,), daemon=True).start()

    def _read(self, url: str) -> None:
        with (
            httpx.Client(timeout=httpx.Timeout(10, read=None)) as client,
            client.stream("GET", url) as reply,
        ):
            for line in reply.iter_lines():
                if self._closed.is_set():
                    return
                if line.startswith("event: "):
                    self.names.append(line.removeprefix("event: "))
                elif line.startswith("data: ") and '"status":"running"' in line:
                    self.running_seen = True

    def settled(self) -> bool:
        """A job's start went out, and the stats that follow it."""
        return self.running_seen and self.names[-1] == "stats"

    def after(self, name: str) -> list[str]:
        return self.names[self.names.index(name) + 1 :] if name in self.names else []

    def close(self) -> None:
        self._closed.set()


def test_a_postgres_restart_while_a_watched_job_finishes_brings_a_resync(
    own_postgres: object, tmp_path: Path
) -> None:
    server: object = own_postgres
    system = start_live_system(server.get_uri(), tmp_path, runners=1)  # type: ignore[attr-defined]
    log = tmp_path / "history.log"
    watchers: list[GrpcWatcher | SseWatcher] = []
    try:
        grpc_watcher = GrpcWatcher(system.scheduler_addr)
        sse_watcher = SseWatcher(f"{system.gateway_url}/api/events")
        watchers += [grpc_watcher, sse_watcher]
        wait_for(lambda: "ready" in sse_watcher.names, 10, "the event stream ready")
        job_id = create(system, "watched", logged_command(log, "watched", "sleep 1.5"))
        wait_for(lambda: "watched" in History.read(log).starts, 10, "the job started")
        # The gateway's stream ends (`error`, the browser reconnects) when stats cannot be
        # read: stop the database once those of the job's start are out, as a quiet
        # stream would be when its scheduler loses the database.
        wait_for(sse_watcher.settled, 10, "the stats of the job's start")
        resyncs_before = grpc_watcher.resyncs()
        server.stop()  # type: ignore[attr-defined]
        # The job ends while the database is away: its end cannot be announced then.
        wait_for(lambda: "watched" in History.read(log).ends, 10, "the job ended")
        time.sleep(1)  # the outage goes on a moment after the end; nothing to poll
        server.ensure_postgres_running()  # type: ignore[attr-defined]
        wait_for(lambda: grpc_watcher.resyncs() > resyncs_before, 30, "a resync over gRPC")
        wait_for(lambda: "resync" in sse_watcher.names, 30, "a resync over SSE")
        # The gateway's resync brings fresh stats with it.
        wait_for(lambda: "stats" in sse_watcher.after("resync"), 10, "stats after the resync")
        # A watcher re-reads on resync: the job is completed (its report was kept by the
        # runner and stored once the database was back).
        job = system.wait_for_job(job_id, {"completed"}, timeout=30)
        assert job["status"] == "completed"
        stats = system.api("GET", "/api/stats").json()
        assert stats["completed"] == 1 and stats["running"] == 0
    finally:
        for watcher in watchers:
            watcher.close()
        system.stop_all()
