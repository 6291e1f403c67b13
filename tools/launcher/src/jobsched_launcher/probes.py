"""Small checks for whether a local service is up: free ports, open ports, healthy URLs,
and a poll with a deadline."""

from __future__ import annotations

import fcntl
import os
import random
import socket
import tempfile
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path


def wait_for(check: Callable[..., object], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.05)
    raise TimeoutError(f"{what} not ready after {timeout:.0f}s")


# Ports handed out come from below the kernel's ephemeral range (32768 and up on Linux),
# so an outgoing connection cannot take one between the pick and the service's bind, and
# in turn from one counter shared by every process of the user (a file in the temp
# directory: another user's could not be written), so parallel test workers, or two
# picks in one process, never get the same port.
_PORTS = range(20000, 32768)
_COUNTER = Path(tempfile.gettempdir()) / f"jobsched-free-port-{os.getuid()}"


def free_port() -> int:
    with open(_COUNTER, "a+") as counter:
        fcntl.flock(counter, fcntl.LOCK_EX)
        counter.seek(0)
        text = counter.read().strip()
        last = int(text) if text.isdigit() else random.choice(_PORTS)
        for step in range(1, len(_PORTS) + 1):
            port = _PORTS[(last - _PORTS.start + step) % len(_PORTS)]
            if _bindable(port):
                counter.seek(0)
                counter.truncate()
                counter.write(str(port))
                return port
    raise OSError(f"no free port in {_PORTS.start}-{_PORTS.stop - 1}")


def _bindable(port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def port_open(address: str) -> bool:
    host, port = address.rsplit(":", 1)
    try:
        socket.create_connection((host, int(port)), timeout=1).close()
        return True
    except OSError:
        return False


def http_ok(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=1) as reply:
            return bool(reply.status == 200)
    except OSError:
        return False
