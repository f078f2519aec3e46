"""The data plane's driver: follows the node's network state and keeps the
namespace (links, FDB, neighbours, routes, rules, the nft table) matching it.

Two threads meet here. The hub's calls :meth:`Overlay._on_change` with the
lock of the hub held: it only copies what changed into the pending
:class:`Batch` (O(changes)) and wakes the ``overlay`` thread, which applies
batches to its :class:`Mirror` and programs the kernel. Several updates that
arrive while one is being programmed are programmed together. New endpoints
alone wait up to ``COALESCE_S`` after the previous pass, to be programmed
together; removals never wait.

The first pass after the node knows who it is (this node is among the
peers) reads the kernel and changes only what differs from the whole state,
so an agent that restarts finds its overlay in place and leaves it, and
connections through it, alone. Later passes change what the batch touched:
a network's device entries, a service's chains and map elements, in one nft
transaction. A pass that fails is retried (from a full read of the kernel)
after a backoff. Nothing is removed before the state has arrived: an agent
starting with an empty state does not tear down what its predecessor made.
"""

from __future__ import annotations

import threading
import time
from typing import TYPE_CHECKING

from common.logging import get_logger
from nodeagent.network.overlay.addressing import MAC_PREFIX
from nodeagent.network.overlay.conntrack import Destination, forget_udp_flows
from nodeagent.network.overlay.errors import OverlayError
from nodeagent.network.overlay.links import KernelNet, KernelState, Links, Underlay
from nodeagent.network.overlay.plan import (
    Affected,
    Batch,
    LinkPlan,
    Mirror,
    ServiceRules,
    plan_network,
    service_rules,
)
from nodeagent.network.overlay.ruleset import TableState, balanced_udp, build, lost_udp, transaction
from nodeagent.network.overlay.table import Nft
from nodeagent.network.state import Changes, NetworkState, NetworkStateHub, Peer

if TYPE_CHECKING:
    from structlog.typing import FilteringBoundLogger

__all__ = ["Overlay"]

RETRY_MIN = 0.5
RETRY_MAX = 30.0
# A pass's cost is mostly fixed (the table's rebuild, one transaction, which
# libnftables prices by the table's size: ~2 ms for a service of 100
# endpoints), so new endpoints are gathered: a pass that would program only
# endpoints that appeared starts at least this long after the previous one,
# and a deploy's tasks turning running one by one cost a few passes instead
# of one each. Anything else (a removal above all: a stopping task must get no
# new connection) is programmed at once. kube-proxy's equivalent,
# --min-sync-period, is 1 s.
COALESCE_S = 0.1
# Forgetting the UDP flows of endpoints that left costs a walk of the whole
# conntrack table per destination (``overlay.conntrack``: ~11 ms on an idle
# node, tens under load), in the overlay thread. The first removal after a
# quiet spell has its flows forgotten at once, after its pass; removals that
# follow within this long are gathered into the next walk, so a rollout's
# stream of removals costs a walk or two a second, not one per task. The
# new rules already send no new flow to a removed endpoint; only a UDP flow
# that keeps sending goes on reaching it until then. And while the table's
# ``udp_flows`` counter says no VIP has balanced a UDP flow (services
# reached over TCP only, the usual case), VIPs need no walk at all.
FORGET_GAP_S = 0.5


class Overlay:
    """Programs this node's overlay from ``hub``.

    ``underlay_address`` identifies this node among the peers when the state
    does not name it; with ``node_index`` too, the node is known even
    before the state lists it (tests drive it that way).
    """

    def __init__(self, hub: NetworkStateHub, underlay_address: str = "",
                 node_index: int | None = None, logger: FilteringBoundLogger | None = None) -> None:
        fixed = (Peer(node_id="", index=node_index, address=underlay_address)
                 if node_index is not None and underlay_address else None)
        self.log = logger or get_logger("orch.overlay")
        self._mirror = Mirror(underlay_address, fixed)
        self._cond = threading.Condition()
        self._batch = Batch()
        self._node_id = ""  # as last handed over
        self._received = 0  # batches handed over
        self._done = 0  # the last of them applied (or found nothing to do)
        self._stopping = False
        self._remove = False
        self._failure: Exception | None = None  # of the removal, for close() to raise
        self._links: Links | None = None  # made by the overlay thread, in its namespace
        self._nft: Nft | None = None
        self._under: Underlay | None = None
        self._plans: dict[str, LinkPlan] = {}  # network id -> as programmed
        self._nets: dict[str, KernelNet] = {}  # network id -> its device as programmed
        self._routes = KernelState()  # the mesh's rules and tables as programmed
        self._rules: dict[str, ServiceRules] = {}  # service id -> its part of the table
        self._table: TableState | None = None  # as programmed
        self._full = True  # the next pass reads the kernel
        self._dirty = Affected()
        self._problems: set[str] = set()
        self._forget: dict[Destination, set[str]] = {}  # UDP flows to forget (see FORGET_GAP_S)
        self._forget_after = 0.0  # monotonic: the next walk not before
        self.last_pass: tuple[str, float] = ("", 0.0)  # ("full" | "partial", seconds): for benchmarks
        self._thread = threading.Thread(target=self._run, name="overlay", daemon=True)
        self._thread.start()
        hub.subscribe(self._on_change)

    # ---- the hub's thread ------------------------------------------------------

    def _on_change(self, state: NetworkState, changes: Changes) -> None:
        with self._cond:
            if self._stopping:
                return
            b = self._batch
            if state.node_id and state.node_id != self._node_id:  # news only: see Batch.only_new_endpoints
                b.node_id = self._node_id = state.node_id
            for k in changes.networks:
                b.networks[k] = state.networks.get(k)
            for k in changes.peers:
                b.peers[k] = state.peers.get(k)
            for k in changes.services:
                b.services[k] = state.services.get(k)
            for k in changes.endpoints:
                b.endpoints[k] = state.endpoints.get(k)
            self._received += 1
            self._cond.notify_all()

    # ---- callers' -------------------------------------------------------------

    def wait_synced(self, timeout: float) -> bool:
        """Whether every update received so far is in the kernel, waiting up
        to ``timeout`` seconds for it."""
        deadline = time.monotonic() + timeout
        with self._cond:
            target = self._received
            while self._done < target:
                left = deadline - time.monotonic()
                if left <= 0 or self._stopping:
                    return self._done >= target
                self._cond.wait(left)
            return True

    def close(self, remove: bool = False) -> None:
        """Stop following the state. The kernel keeps the overlay (a
        restarted agent takes it over) unless ``remove``: then everything
        it added goes (``orch agent stop --all``). The overlay thread does
        the removal, in the namespace it programmed, whichever thread asks."""
        with self._cond:
            self._stopping = True
            self._remove = self._remove or remove
            self._cond.notify_all()
        self._thread.join()
        if self._failure is not None:
            failure, self._failure = self._failure, None
            raise failure

    # ---- the overlay thread ----------------------------------------------------

    def _run(self) -> None:
        try:
            self._follow()
        finally:
            self._finish()

    def _finish(self) -> None:
        if self._forget:
            self._forget_gathered()
        links, self._links = self._links, None
        nft, self._nft = self._nft, None
        try:
            if self._remove:
                links, nft = links or Links(), nft or Nft()
                remove_all(links, nft)
        except Exception as exc:
            self._failure = exc
        finally:
            if links is not None:
                links.close()
            if nft is not None:
                nft.close()

    def _follow(self) -> None:
        retry_at: float | None = None
        delay = RETRY_MIN
        last_start = 0.0
        while True:
            if self._forget_due():
                self._forget_gathered()
            with self._cond:
                while not self._stopping and not self._batch and (
                        retry_at is None or time.monotonic() < retry_at) and not self._forget_due():
                    wake = [t for t in (retry_at, self._forget_after if self._forget else None)
                            if t is not None]
                    self._cond.wait(min(wake) - time.monotonic() if wake else None)
                while not self._stopping and self._batch.only_new_endpoints() and (
                        gap := last_start + COALESCE_S - time.monotonic()) > 0:
                    self._cond.wait(gap)
                if self._stopping:
                    return
                last_start = time.monotonic()
                batch, self._batch = self._batch, Batch()
                generation = self._received
            affected = self._mirror.apply(batch)
            self._dirty.networks |= affected.networks
            self._dirty.services |= affected.services
            self._full = self._full or affected.everything
            try:
                self._pass()
            except Exception as exc:
                self.log.error("programming the overlay failed; retrying", error=str(exc),
                               retry_in=delay, exc_info=not hasattr(exc, "step"))
                self._full = True
                retry_at, delay = time.monotonic() + delay, min(delay * 2, RETRY_MAX)
                continue
            retry_at, delay = None, RETRY_MIN
            if self._forget_due():  # a quiet spell's first removal: in sync once forgotten
                self._forget_gathered()
            with self._cond:
                self._done = max(self._done, generation)
                self._cond.notify_all()

    def _forget_due(self) -> bool:
        return bool(self._forget) and time.monotonic() >= self._forget_after

    def _forget_later(self, lost: dict[Destination, set[str]]) -> None:
        for dest, addresses in lost.items():
            self._forget.setdefault(dest, set()).update(addresses)

    def _forget_gathered(self) -> None:
        """Forget the gathered flows, of addresses not balanced to again
        since (one walk per destination); the next walk waits FORGET_GAP_S.
        A failure is logged: the flows then end when they idle."""
        pending, self._forget = self._forget, {}
        self._forget_after = time.monotonic() + FORGET_GAP_S
        now = balanced_udp(self._table)
        gone = {dest: addresses - now.get(dest, set()) for dest, addresses in pending.items()}
        if self._nft is not None and any(port == 0 for _, port in gone) and self._nft.udp_flows() == 0:
            # No VIP has balanced a UDP flow since the table was made: no walk for VIPs.
            gone = {dest: addresses for dest, addresses in gone.items() if dest[1] != 0}
        try:
            forget_udp_flows(gone)
        except OverlayError as exc:
            self.log.error("forgetting the UDP flows of removed endpoints failed; they end "
                           "when they idle", error=str(exc))

    def _pass(self) -> None:
        me = self._mirror.me
        if me is None:
            return  # the state has not arrived: touch nothing
        started = time.monotonic()
        if self._links is None:
            self._links = Links()
        if self._nft is None:
            self._nft = Nft()
        problems: list[str] = []
        kind = "full" if self._full else "partial"
        if self._full:
            self._full_pass(self._links, me, problems)
        else:
            self._partial_pass(self._links, problems)
        self._dirty = Affected()
        self._full = False
        self.last_pass = (kind, time.monotonic() - started)
        for problem in sorted(set(problems) - self._problems):
            self.log.error("overlay state cannot be programmed as sent", problem=problem)
        self._problems = set(problems)

    def _full_pass(self, links: Links, me: Peer, problems: list[str]) -> None:
        self._under = under = links.underlay(me.address)
        _check_rp_filter(self.log)
        kernel = links.read()
        plans = self._plan_all(problems)
        wanted = {p.name for p in plans.values()}
        for name, net in kernel.nets.items():
            if name not in wanted and net.mac.startswith(MAC_PREFIX):
                links.delete_net(net)
        self._plans, self._nets = {}, {}
        for nid, plan in plans.items():
            self._nets[nid] = links.sync_network(plan, kernel.nets.get(plan.name), under)
            self._plans[nid] = plan
        self._routes = KernelState(returns=kernel.returns, rules=kernel.rules, gate=kernel.gate)
        self._rules = {sid: service_rules(self._mirror, sid) for sid in self._mirror.services}
        assert self._nft is not None
        self._table = self._nft.read()
        self._node_wide(links, problems)

    def _partial_pass(self, links: Links, problems: list[str]) -> None:
        assert self._under is not None
        returns_changed = False
        for nid in sorted(self._dirty.networks):
            plan = self._plan_one(nid, problems)
            old = self._plans.get(nid)
            if plan == old:
                continue
            current = self._nets.pop(nid, None)
            self._plans.pop(nid, None)
            if plan is None:
                if current is not None:
                    links.delete_net(current)
            else:
                self._nets[nid] = links.sync_network(plan, current, self._under)
                self._plans[nid] = plan
            if (old.returns if old else ()) != (plan.returns if plan else ()):
                returns_changed = True
        for sid in self._dirty.services:
            if sid in self._mirror.services:
                self._rules[sid] = service_rules(self._mirror, sid)
            else:
                self._rules.pop(sid, None)
        self._node_wide(links, problems, returns_changed)

    def _node_wide(self, links: Links, problems: list[str], returns_changed: bool = True) -> None:
        """The mesh's rules and the nft table; a node without any overlay
        network has neither."""
        assert self._nft is not None
        if not self._plans:
            links.sync_returns({}, self._routes)
            if self._routes.gate:
                links.remove_gate()
                self._routes.gate = False
            if self._table is not None:
                self._nft.delete()
                self._forget_later(lost_udp(self._table, None))
                self._table = None
            return
        links.ensure_gate(self._routes)
        if returns_changed:
            links.sync_returns(self._returns(problems), self._routes)
        under = self._under
        snat = under.address if under is not None and under.prefsrc else ""
        desired = build(self._rules, self._plans.values(), problems, snat)
        self._nft.apply(transaction(self._table, desired))
        self._forget_later(lost_udp(self._table, desired))
        self._table = desired

    def _plan_all(self, problems: list[str]) -> dict[str, LinkPlan]:
        plans: dict[str, LinkPlan] = {}
        for nid in sorted(self._mirror.networks):
            plan = self._plan_one(nid, problems, plans)
            if plan is not None:
                plans[nid] = plan
        return plans

    def _plan_one(self, nid: str, problems: list[str],
                  others: dict[str, LinkPlan] | None = None) -> LinkPlan | None:
        """Network ``nid``'s plan, unless another network holds its device
        name (the same VNI sent twice): the first keeps it."""
        plan = plan_network(self._mirror, nid, problems)
        if plan is None:
            return None
        for other_id, other in (others if others is not None else self._plans).items():
            if other_id != nid and other.name == plan.name:
                problems.append(f"networks {other_id} and {nid} have the same VNI {plan.vni}; "
                                f"{nid} is left out")
                return None
        return plan

    def _returns(self, problems: list[str]) -> dict[int, tuple[str, str]]:
        """Every mesh return route: mark -> (gateway, device)."""
        out: dict[int, tuple[str, str]] = {}
        for nid in sorted(self._plans):
            plan = self._plans[nid]
            for ret in plan.returns:
                if ret.mark in out and out[ret.mark][1] != plan.name:
                    problems.append(f"network {nid} (VNI {plan.vni}) shares its mesh marks with "
                                    f"{out[ret.mark][1]}: VNIs must differ in their low 12 bits")
                    continue
                out[ret.mark] = (ret.gateway, plan.name)
        return out


def remove_all(links: Links, nft: Nft) -> None:
    """Everything the overlay adds to this namespace: the nft table, the
    mesh's rules and tables, the VXLAN devices (their addresses, routes,
    FDB and neighbour entries go with them)."""
    nft.delete()
    links.remove_all()


def _check_rp_filter(log: FilteringBoundLogger) -> None:
    """The mesh delivers over a VXLAN device connections whose client is
    routed elsewhere, and its replies leave through the bridge: strict
    reverse-path filtering, which the node-wide ``all`` setting imposes on
    every device, would drop both."""
    try:
        with open("/proc/sys/net/ipv4/conf/all/rp_filter") as f:
            strict = f.read().strip() == "1"
    except OSError:
        return
    if strict:
        log.error("net.ipv4.conf.all.rp_filter is 1 (strict): the routing mesh needs 0 or 2 (loose) "
                  "to reach tasks on other nodes")
