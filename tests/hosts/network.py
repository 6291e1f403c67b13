"""Test hosts on one machine: a network namespace per host, each joined to a bridge in
the root namespace by a veth pair, with its own address; and real cuts between them
(a link taken down, or a blackhole route between two hosts). iproute2 only, as root."""

from __future__ import annotations

import contextlib
import ipaddress
import os
import re
import shutil
import signal
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

# Every name the bed creates starts with this, then the pid of the run that made it in
# hex: what a crashed run leaves behind is found, and removed, by the next.
PREFIX = "jsh"
# A locally administered hardware address that no interface of the bed has.
NOWHERE = "02:00:00:00:00:00"
SUBNETS = [ipaddress.IPv4Network(f"10.213.{n}.0/24") for n in range(256)]


def ip(*args: str, namespace: str | None = None) -> str:
    """Runs `ip args` (inside `namespace` if given) and returns its output."""
    command = ["ip", *args] if namespace is None else ["ip", "-n", namespace, *args]
    done = subprocess.run(command, capture_output=True, text=True, timeout=10)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(command)}: {done.stderr.strip()}")
    return done.stdout


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def sweep_stale() -> None:
    """Removes the namespaces, links and temporary directories of runs whose process is
    gone, and kills what such a run left running in its namespaces."""
    owner = re.compile(rf"^{PREFIX}([0-9a-f]+)-")
    for name in ip("netns", "list").split():
        found = owner.match(name)
        if found and not _pid_alive(int(found[1], 16)):
            with contextlib.suppress(RuntimeError):
                for pid in ip("netns", "pids", name).split():
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(int(pid), signal.SIGKILL)
                ip("netns", "delete", name)
    for path in Path(tempfile.gettempdir()).glob(f"{PREFIX}*-*"):
        found = owner.match(path.name)
        if found and not _pid_alive(int(found[1], 16)):
            shutil.rmtree(path, ignore_errors=True)
    for line in ip("-o", "link", "show").splitlines():
        name = line.split(":")[1].strip().split("@")[0]
        found = owner.match(name)
        if found and not _pid_alive(int(found[1], 16)):
            with contextlib.suppress(RuntimeError):
                ip("link", "delete", name)


def _free_subnet() -> ipaddress.IPv4Network:
    """A /24 that no address or route of the root namespace touches."""
    used = [
        ipaddress.ip_network(word, strict=False)
        for word in ip("-4", "-o", "addr", "show").split() + ip("-4", "route", "show").split()
        if re.fullmatch(r"\d+\.\d+\.\d+\.\d+/\d+", word)
    ]
    for subnet in SUBNETS:
        if not any(subnet.overlaps(other) for other in used):
            return subnet
    raise RuntimeError("no free 10.213.x.0/24 subnet for the test hosts")


@dataclass
class Host:
    name: str
    namespace: str
    address: str
    # The veth end on the bridge's side, in the root namespace: down is a pulled cable.
    outer_link: str


@dataclass
class Network:
    """A bridge and the hosts on it; `close()` removes all of it."""

    tag: str = field(default_factory=lambda: f"{os.getpid():x}")
    hosts: dict[str, Host] = field(default_factory=dict)
    blocked: set[tuple[str, str]] = field(default_factory=set)

    def __post_init__(self) -> None:
        self.bridge = f"{PREFIX}{self.tag}-br"

    def open(self) -> None:
        sweep_stale()
        self.subnet = _free_subnet()
        self._addresses = self.subnet.hosts()
        gateway = str(next(self._addresses))
        ip("link", "add", self.bridge, "type", "bridge")
        ip("addr", "add", f"{gateway}/{self.subnet.prefixlen}", "dev", self.bridge)
        ip("link", "set", self.bridge, "up")

    def add_host(self, name: str) -> Host:
        index = len(self.hosts)
        host = Host(
            name=name,
            namespace=f"{PREFIX}{self.tag}-{name}",
            address=str(next(self._addresses)),
            outer_link=f"{PREFIX}{self.tag}-v{index}",
        )
        ns = host.namespace
        ip("netns", "add", ns)
        self.hosts[name] = host
        ip("link", "add", host.outer_link, "type", "veth", "peer", "name", "eth0", "netns", ns)
        ip("link", "set", host.outer_link, "master", self.bridge, "up")
        ip("addr", "add", f"{host.address}/{self.subnet.prefixlen}", "dev", "eth0", namespace=ns)
        ip("link", "set", "lo", "up", namespace=ns)
        ip("link", "set", "eth0", "up", namespace=ns)
        return host

    def temporary_directory(self, what: str) -> tempfile.TemporaryDirectory[str]:
        """One the next run deletes if this one dies without doing so."""
        return tempfile.TemporaryDirectory(prefix=f"{PREFIX}{self.tag}-{what}-")

    def address(self, name: str) -> str:
        return self.hosts[name].address

    def exec_prefix(self, name: str) -> list[str]:
        """What to put before a command to run it on host `name`."""
        return ["ip", "netns", "exec", self.hosts[name].namespace]

    def cut(self, name: str) -> None:
        """Takes `name`'s link down: it can reach no one, and no one reaches it."""
        ip("link", "set", self.hosts[name].outer_link, "down")

    def heal(self, name: str) -> None:
        ip("link", "set", self.hosts[name].outer_link, "up")

    def block(self, one: str, other: str) -> None:
        """Cuts `one` and `other` apart, both ways, leaving every other path up: each
        sends to the other's address at a hardware address no one has, so packets are
        lost on the wire, as in a real partition (a blackhole route would fail the
        send at once instead)."""
        for here, there in ((one, other), (other, one)):
            ip(
                "neigh", "replace", self.address(there), "lladdr", NOWHERE,
                "dev", "eth0", "nud", "permanent", namespace=self._ns(here),
            )  # fmt: skip
        self.blocked.add((one, other))

    def unblock(self, one: str, other: str) -> None:
        for here, there in ((one, other), (other, one)):
            ip("neigh", "del", self.address(there), "dev", "eth0", namespace=self._ns(here))
        self.blocked.discard((one, other))

    def heal_all(self) -> None:
        """Undoes every cut, so that the next test starts on a whole network."""
        for pair in list(self.blocked):
            self.unblock(*pair)
        for name in self.hosts:
            self.heal(name)

    def _ns(self, name: str) -> str:
        return self.hosts[name].namespace

    def close(self) -> None:
        """Deleting one end of a veth pair deletes both; a namespace lives on while a
        process is still in it, so its link is deleted first."""
        for host in self.hosts.values():
            with contextlib.suppress(RuntimeError):
                ip("link", "delete", host.outer_link)
            with contextlib.suppress(RuntimeError):
                ip("netns", "delete", host.namespace)
        with contextlib.suppress(RuntimeError):
            ip("link", "delete", self.bridge)
        self.hosts.clear()


@contextlib.contextmanager
def network(*names: str) -> Iterator[Network]:
    """A network with the hosts `names`, removed afterwards even if a step fails."""
    net = Network()
    try:
        net.open()
        for name in names:
            net.add_host(name)
        yield net
    finally:
        net.close()
