"""Which of gRPC's I/O engines the services use: its polling endpoints, which read and
write sockets on the thread that waits for gRPC's completions.

grpc.aio hands every completion from that thread to the event loop. With gRPC's newer
EventEngine endpoints (its default), the socket I/O runs on threads of their own as
well, so each message crosses one more thread. In a REST-fed drain that was about six
context switches a job across the scheduler, the runners and the gateway, and the
drain ran about 6% faster without them (docs/performance.md). Nothing else changes:
the same TLS, keepalive and message limits.

Set before gRPC loads (each service's package does it first), and only where the
operator has not set GRPC_EXPERIMENTS."""

import os

POLLING_ENDPOINTS = "-event_engine_client,-event_engine_listener"


def use_polling_endpoints() -> None:
    os.environ.setdefault("GRPC_EXPERIMENTS", POLLING_ENDPOINTS)
