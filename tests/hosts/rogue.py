"""What a rogue host tries against a scheduler, run on that host:
`python -m tests.hosts.rogue ADDR CA_FILE ACTION [options]`, printing what came back as
one JSON object. It knows the CA (it is public), never a credential it was not given."""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from jobsched.v1 import jobs_pb2, jobs_pb2_grpc, runner_pb2_grpc
from jobsched.v1 import runner_pb2 as pb

# How long the rogue keeps its stream open to hear what the scheduler answers.
LISTEN_SECONDS = 3.0


def _metadata(token: str) -> tuple[tuple[str, str], ...] | None:
    return (("authorization", f"Bearer {token}"),) if token else None


def _ref(text: str) -> pb.AttemptRef:
    job_id, attempt = text.split(":")
    return pb.AttemptRef(job_id=int(job_id), attempt=int(attempt))


def health(channel: grpc.Channel, _: argparse.Namespace) -> dict[str, Any]:
    reply = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=5)
    return {"code": "OK", "status": health_pb2.HealthCheckResponse.ServingStatus.Name(reply.status)}


def api(channel: grpc.Channel, args: argparse.Namespace) -> dict[str, Any]:
    """Lists jobs and tries to create one."""
    stub = jobs_pb2_grpc.JobServiceStub(channel)
    codes = {}
    for name, call in (
        ("list", lambda: stub.ListJobs(jobs_pb2.ListJobsRequest(), **_call(args))),
        (
            "create",
            lambda: stub.CreateJob(
                jobs_pb2.CreateJobRequest(name="rogue", command="id"), **_call(args)
            ),
        ),
    ):
        try:
            call()
            codes[name] = "OK"
        except grpc.RpcError as exc:
            codes[name] = exc.code().name
    return codes


def _call(args: argparse.Namespace) -> dict[str, Any]:
    return {"metadata": _metadata(args.token), "timeout": 5}


def runner(channel: grpc.Channel, args: argparse.Namespace) -> dict[str, Any]:
    """Registers as a runner, then reports `--finish` done and heartbeats `--renew`."""
    messages = [pb.RunnerMessage(register=pb.Register(runner_id=args.runner_id, capacity=10000))]
    for text in args.finish:
        forged = pb.Finished(ref=_ref(text), exit_code=99, output_tail=b"forged")
        messages.append(pb.RunnerMessage(finished=forged))
    if args.renew:
        beat = pb.Heartbeat(running=[_ref(t) for t in args.renew], seq=1)
        messages.append(pb.RunnerMessage(heartbeat=beat))

    def outgoing() -> Iterator[pb.RunnerMessage]:
        yield from messages
        time.sleep(LISTEN_SECONDS)

    stub = runner_pb2_grpc.RunnerServiceStub(channel)
    call = stub.Connect(outgoing(), metadata=_metadata(args.token), timeout=LISTEN_SECONDS + 5)
    heard: list[str] = []
    renewed: list[str] = []
    code = "OK"
    try:
        for reply in call:
            kind = reply.WhichOneof("body")
            heard.append(str(kind))
            if kind == "renewed":
                renewed += [f"{r.job_id}:{r.attempt}" for r in reply.renewed.refs]
    except grpc.RpcError as exc:
        code = exc.code().name
    return {"code": code, "heard": heard, "renewed": renewed}


ACTIONS = {"health": health, "api": api, "runner": runner}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("addr")
    parser.add_argument("ca_file")
    parser.add_argument("action", choices=sorted(ACTIONS))
    parser.add_argument("--token", default="")
    parser.add_argument("--runner-id", default="rogue")
    parser.add_argument("--finish", action="append", default=[], metavar="JOB:ATTEMPT")
    parser.add_argument("--renew", action="append", default=[], metavar="JOB:ATTEMPT")
    args = parser.parse_args()
    credentials = grpc.ssl_channel_credentials(Path(args.ca_file).read_bytes())
    with grpc.secure_channel(args.addr, credentials) as channel:
        print(json.dumps(ACTIONS[args.action](channel, args)))


if __name__ == "__main__":
    main()
