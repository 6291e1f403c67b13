"""An attempt of a job as the runner names it, and as the link carries it."""

from jobsched.v1 import runner_pb2 as pb

Key = tuple[int, int]  # (job id, attempt): the attempt is the fencing token


def to_ref(key: Key) -> pb.AttemptRef:
    return pb.AttemptRef(job_id=key[0], attempt=key[1])


def to_key(ref: pb.AttemptRef) -> Key:
    return (ref.job_id, ref.attempt)
