"""gRPC health checking and reflection for every server, and a probe command."""

import sys
from collections.abc import Iterable

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection


def add_health_and_reflection(
    server: grpc.aio.Server, service_names: Iterable[str]
) -> health.aio.HealthServicer:
    """Registers health (every service SERVING) and reflection; returns the servicer
    so that the caller can set NOT_SERVING on shutdown."""
    names = list(service_names)
    servicer = health.aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(servicer, server)
    reflection.enable_server_reflection(
        [*names, health.SERVICE_NAME, reflection.SERVICE_NAME], server
    )
    return servicer


async def set_serving(servicer: health.aio.HealthServicer, names: Iterable[str]) -> None:
    for name in ["", *names]:
        await servicer.set(name, health_pb2.HealthCheckResponse.SERVING)


async def set_not_serving(servicer: health.aio.HealthServicer) -> None:
    await servicer.enter_graceful_shutdown()


def main() -> None:
    """`jobsched-health HOST:PORT`: exit 0 when the server there is SERVING."""
    if len(sys.argv) != 2:
        sys.exit("usage: jobsched-health HOST:PORT")
    with grpc.insecure_channel(sys.argv[1]) as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        try:
            reply = stub.Check(health_pb2.HealthCheckRequest(), timeout=3)
        except grpc.RpcError as exc:
            sys.exit(f"unhealthy: {exc.code().name}")
    if reply.status != health_pb2.HealthCheckResponse.SERVING:
        sys.exit(f"unhealthy: {health_pb2.HealthCheckResponse.ServingStatus.Name(reply.status)}")
