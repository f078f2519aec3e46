"""Many simulated nodes in one process, on one event loop.

``Simulator`` makes ``nodes`` ``SimNode``s named ``<prefix>1`` ..
``<prefix>N``, gets each one's identity (kept in ``<state_dir>/<name>``:
loaded if it is still good, else by joining with the token, a few joins at
once on threads: ``common.identity.obtain``), starts its session as soon as
it has one, and keeps them until ``stop``. ``kill``/``revive`` act on named
nodes; ``flap`` (a share of the nodes) makes that many nodes go away and
come back on their own, each at random: up ``flap_up`` seconds, away
``flap_down`` seconds (longer than the control plane's node grace period,
so it notices), as a flaky link or a restarting agent (tasks kept). A node
killed by hand stays away, flapping or not, until it is revived.

Each node has the labels ``node=<name>``, the platform labels a real node
gives itself (``platform.os``, ``platform.arch``: given ones win, to try
other platforms), the given ones, and with ``zones`` > 0
``zone=zone-<i mod zones>``; its address is a loopback
address of its own (in ``127.64.0.0/16``, port 1: nothing answers there, so
the control plane's calls to a node's agent, logs or stats, fail at once).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import threading
from collections import Counter
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from common.identity import JoinRefused, NodeIdentity, obtain
from nodeagent.sim.beacons import BeaconHub
from nodeagent.sim.node import KILLED, REGISTERED, SimNode
from nodeagent.sim.tasks import Behaviour

if TYPE_CHECKING:
    from structlog.typing import FilteringBoundLogger

__all__ = ["SimError", "SimOptions", "Simulator", "node_address"]

MAX_NODES = 65535  # a node's index in the cluster fits two bytes (the dispatcher's limit)
NODE_PORT = 1  # where a simulated node's agent would listen: nothing does
LAG_TICK = 0.25
LAG_WINDOW = 40  # ticks: 10 s


class SimError(Exception):
    """A simulation that cannot run as asked; the message names what."""


@dataclass
class SimOptions:
    join: list[str]  # control-plane API addresses (their join ports: + JOIN_PORT_OFFSET)
    token: str  # the node join token
    nodes: int
    state_dir: str  # each node's identity, in a directory of its own
    prefix: str = "sim-"
    cpus: float = 4.0
    memory_bytes: int = 8 << 30
    labels: dict[str, str] = field(default_factory=dict)
    zones: int = 0
    behaviour: Behaviour = field(default_factory=Behaviour)
    flap: float = 0.0  # the share of nodes that flap
    flap_up: tuple[float, float] = (10.0, 30.0)  # seconds a flapping node stays, at random in between
    flap_down: tuple[float, float] = (2.0, 6.0)  # and stays away
    beacons: bool = False
    seed: int | None = None
    join_threads: int = 4
    # Where the sessions go ([]: the join addresses). Only a measurement
    # against a stand-in dispatcher sets it.
    targets: list[str] = field(default_factory=list)


def node_address(index: int) -> str:
    """Node ``index``'s address: a loopback address of its own."""
    return f"127.{64 + (index >> 16)}.{(index >> 8) & 255}.{index & 255}:{NODE_PORT}"


def check(opts: SimOptions) -> None:
    """SimError for options that cannot work."""
    if not 1 <= opts.nodes <= MAX_NODES:
        raise SimError(f"nodes {opts.nodes}: a simulation has 1 to {MAX_NODES} nodes")
    if not opts.join:
        raise SimError("no control-plane address to join")
    if opts.cpus <= 0 or opts.memory_bytes <= 0:
        raise SimError("a node has more than 0 CPUs and more than 0 bytes of memory")
    b = opts.behaviour
    if b.start_delay < 0 or not 0 <= b.fail <= 1 or not 0 <= opts.flap <= 1:
        raise SimError("start delay >= 0; fail and flap are shares from 0 to 1")


class Simulator:
    def __init__(self, opts: SimOptions, log: FilteringBoundLogger) -> None:
        check(opts)
        self.opts = opts
        self.log = log
        self.rng = random.Random(opts.seed)
        self.nodes: dict[str, SimNode] = {}
        self.beacons = BeaconHub() if opts.beacons else None
        self._stopped = threading.Event()  # ends the joins still retrying
        self._pool = ThreadPoolExecutor(max_workers=max(1, opts.join_threads), thread_name_prefix="sim-join")
        self._jobs: list[asyncio.Task[Any]] = []
        self._changed = asyncio.Event()
        self.join_failures: dict[str, str] = {}
        self.held: set[str] = set()  # killed by hand: no flap brings them back
        self.loop_lag = 0.0  # seconds: the most the loop ran late over the last LAG_WINDOW ticks

    # ---- life ---------------------------------------------------------------

    async def start(self) -> None:
        """Make the nodes and start joining them; each node's session starts
        as soon as it has its identity (``wait_registered`` waits for them)."""
        loop = asyncio.get_running_loop()
        targets = self.opts.targets or self.opts.join
        for i in range(1, self.opts.nodes + 1):
            name = f"{self.opts.prefix}{i}"
            labels = {**self.opts.labels, "node": name}
            if self.opts.zones:
                labels["zone"] = f"zone-{i % self.opts.zones}"
            node = SimNode(name, i, labels, self.opts.cpus, self.opts.memory_bytes, node_address(i),
                           targets, self.opts.behaviour, self.log, self.beacons, self._changed.set)
            node.rng.seed(self.rng.random())
            self.nodes[name] = node
        for node in self.nodes.values():
            self._jobs.append(loop.create_task(self._join(node)))
        flapping = self.rng.sample(sorted(self.nodes.values(), key=lambda n: n.index),
                                   round(self.opts.flap * self.opts.nodes))
        for node in flapping:
            self._jobs.append(loop.create_task(self._flap(node)))
        self._jobs.append(loop.create_task(self._watch_lag()))

    async def _watch_lag(self) -> None:
        """How late the event loop runs what is due (``status``'s ``loop_lag_ms``): a
        simulation that cannot keep up sends its heartbeats late too."""
        loop = asyncio.get_running_loop()
        window: list[float] = []
        while True:
            asked = loop.time()
            await asyncio.sleep(LAG_TICK)
            window.append(loop.time() - asked - LAG_TICK)
            del window[:-LAG_WINDOW]
            self.loop_lag = max(window)

    async def _join(self, node: SimNode) -> None:
        loop = asyncio.get_running_loop()
        pki_dir = os.path.join(self.opts.state_dir, node.name)
        try:
            identity = await loop.run_in_executor(self._pool, self._obtain, pki_dir, node.name)
        except JoinRefused as err:
            self.join_failures[node.name] = str(err)
            self.log.error("cannot join the cluster", node=node.name, error=str(err))
            node.refused(str(err))
            return
        if identity is not None:
            node.start(identity)

    def _obtain(self, pki_dir: str, name: str) -> NodeIdentity | None:
        from proto import cluster_pb2

        os.makedirs(pki_dir, mode=0o700, exist_ok=True)
        return obtain(pki_dir, self.opts.join, self.opts.token, name, "", self._stopped, self.log,
                      pb=cluster_pb2)

    async def _flap(self, node: SimNode) -> None:
        up, down = self.opts.flap_up, self.opts.flap_down
        while True:
            await asyncio.sleep(self.rng.uniform(*up))
            if node.state != REGISTERED or node.name in self.held:
                continue  # not joined yet, or killed by hand: left alone
            await node.kill(lose_tasks=False)
            await asyncio.sleep(self.rng.uniform(*down))
            if node.name not in self.held:
                node.revive()

    async def stop(self) -> None:
        self._stopped.set()
        for job in self._jobs:
            job.cancel()
        for job in self._jobs:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await job
        await asyncio.gather(*(node.close() for node in self.nodes.values()), return_exceptions=True)
        if self.beacons is not None:
            self.beacons.close()
        self._pool.shutdown(wait=False, cancel_futures=True)

    # ---- control ------------------------------------------------------------

    def find(self, names: Iterable[str]) -> list[SimNode]:
        """The named nodes; SimError naming the first unknown one."""
        out = []
        for name in names:
            node = self.nodes.get(name)
            if node is None:
                raise SimError(f"no simulated node {name!r} (they are {self.opts.prefix}1 to "
                               f"{self.opts.prefix}{self.opts.nodes})")
            out.append(node)
        return out

    async def kill(self, names: Iterable[str], lose_tasks: bool = True) -> list[str]:
        """Kill the named nodes; they stay away (flapping or not) until ``revive``."""
        nodes = self.find(names)
        self.held.update(n.name for n in nodes)
        await asyncio.gather(*(node.kill(lose_tasks) for node in nodes))
        return [n.name for n in nodes]

    def revive(self, names: Iterable[str]) -> list[str]:
        nodes = self.find(names)
        for node in nodes:
            self.held.discard(node.name)
            node.revive()
        return [n.name for n in nodes]

    async def wait_registered(self, count: int | None = None) -> None:
        """Until ``count`` nodes (default all) have registered at least once."""
        want = self.opts.nodes if count is None else count
        while sum(1 for n in self.nodes.values() if n.sessions) < want:
            self._changed.clear()
            await self._changed.wait()

    def status(self) -> dict[str, Any]:
        """The nodes by state, the tasks by last reported state, and who is killed."""
        states = Counter(n.state for n in self.nodes.values())
        tasks: Counter[str] = Counter()
        for node in self.nodes.values():
            tasks.update(node.tasks.counts())
        return {"nodes": self.opts.nodes, "states": dict(states), "tasks": dict(tasks),
                "network_messages": sum(n.network_messages for n in self.nodes.values()),
                "network_entries": sum(n.network_entries for n in self.nodes.values()),
                "killed": sorted((n.name for n in self.nodes.values() if n.state == KILLED),
                                 key=lambda name: self.nodes[name].index),
                "join_failures": self.join_failures, "loop_lag_ms": round(self.loop_lag * 1000, 1),
                "beacons_sent": self.beacons.sent if self.beacons is not None else 0}
