"""Hosts for the partition test: network namespaces joined to this one by veth links, and
a throwaway PostgreSQL cluster (`benchmarks.cluster`) that listens on those links.

Each "host" k is a namespace with one veth pair: 10.213.k.1 on this side, 10.213.k.2 in
the namespace. Cutting a host takes its link down: its processes keep running but reach
nothing, as when a machine drops off the network. Everything made here is removed by
`close`, also after a failure.
"""

from __future__ import annotations

import os
import shutil
import subprocess

from benchmarks.cluster import why_not as cluster_why_not

_TAG = f"{os.getpid() % 10000}"


def why_not() -> str | None:
    """Why namespaces or a throwaway cluster cannot be made here (None: they can)."""
    if os.geteuid() != 0:
        return "network namespaces need root"
    if shutil.which("ip") is None:
        return "the `ip` command is needed"
    if (reason := cluster_why_not()) is not None:
        return reason
    probe = f"tsprobe{_TAG}"
    made = subprocess.run(["ip", "netns", "add", probe], capture_output=True, text=True)
    if made.returncode != 0:
        return f"cannot make a network namespace: {made.stderr.strip()}"
    subprocess.run(["ip", "netns", "del", probe], check=False)
    return None


def _ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True, text=True)


class Hosts:
    """`count` namespaces, each linked to this one."""

    def __init__(self, count: int) -> None:
        self.count = count
        self._made: list[int] = []

    def namespace(self, k: int) -> str:
        return f"tsh{k}-{_TAG}"

    def _veth(self, k: int) -> str:
        return f"tsv{k}-{_TAG}"

    def gateway(self, k: int) -> str:
        """This side's address on host k's link (where the host reaches the database)."""
        return f"10.213.{k}.1"

    def open(self) -> Hosts:
        for k in range(1, self.count + 1):
            ns, veth, peer = self.namespace(k), self._veth(k), f"tsp{k}-{_TAG}"
            _ip("netns", "add", ns)
            self._made.append(k)
            _ip("link", "add", veth, "type", "veth", "peer", "name", peer)
            _ip("link", "set", peer, "netns", ns)
            _ip("addr", "add", f"{self.gateway(k)}/24", "dev", veth)
            _ip("link", "set", veth, "up")
            _ip("-n", ns, "addr", "add", f"10.213.{k}.2/24", "dev", peer)
            _ip("-n", ns, "link", "set", peer, "up")
            _ip("-n", ns, "link", "set", "lo", "up")
        return self

    def command(self, k: int, argv: list[str]) -> list[str]:
        """`argv` run inside host k."""
        return ["ip", "netns", "exec", self.namespace(k), *argv]

    def cut(self, k: int) -> None:
        _ip("link", "set", self._veth(k), "down")

    def heal(self, k: int) -> None:
        _ip("link", "set", self._veth(k), "up")

    def close(self) -> None:
        for k in self._made:
            subprocess.run(["ip", "link", "del", self._veth(k)], capture_output=True, check=False)
            subprocess.run(["ip", "netns", "del", self.namespace(k)], check=False)
        self._made = []
