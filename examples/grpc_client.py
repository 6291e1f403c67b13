"""A gRPC client of the scheduler's public API: create a job, watch its events until
it ends, and print its output.

    python examples/grpc_client.py [ADDR]     (default 127.0.0.1:50051)

Needs only the generated code: `pip install ./protos` (or `make install`)."""

import sys

import grpc
from jobsched.v1 import jobs_pb2 as pb
from jobsched.v1 import jobs_pb2_grpc

FINISHED = {pb.JOB_STATUS_COMPLETED, pb.JOB_STATUS_FAILED, pb.JOB_STATUS_CANCELLED}


def main() -> None:
    addr = sys.argv[1] if len(sys.argv) > 1 else "127.0.0.1:50051"
    with grpc.insecure_channel(addr) as channel:
        jobs = jobs_pb2_grpc.JobServiceStub(channel)
        # Subscribe first, so that no event of the new job is missed.
        events = jobs.WatchEvents(pb.WatchEventsRequest(), timeout=60)
        job = jobs.CreateJob(
            pb.CreateJobRequest(name=f"grpc-example-{id(channel)}", command="echo hello over gRPC"),
            timeout=5,
        )
        print(f"created job {job.id}")
        for event in events:
            if event.job_id != job.id:
                continue
            print(f"job {job.id}: {pb.JobStatus.Name(event.status)}")
            if event.status in FINISHED:
                break
        events.cancel()
        output = jobs.GetJobOutput(pb.GetJobOutputRequest(id=job.id), timeout=5)
        print(f"output: {output.output.strip()}")


if __name__ == "__main__":
    main()
