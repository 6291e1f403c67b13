"""The runner link's gRPC options, the same at both ends: keepalive pings find a dead
peer or a silent network within seconds, also while no message flows."""

from .limits import MAX_MESSAGE_BYTES


def link_options(every_seconds: float, timeout_seconds: float) -> list[tuple[str, int]]:
    return [
        ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
        ("grpc.keepalive_time_ms", int(every_seconds * 1000)),
        ("grpc.keepalive_timeout_ms", int(timeout_seconds * 1000)),
        ("grpc.keepalive_permit_without_calls", 1),
        ("grpc.http2.max_pings_without_data", 0),
    ]
