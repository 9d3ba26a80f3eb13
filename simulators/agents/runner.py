"""The agents process: list+watch nodes and the ClusterPolicy, and reconcile each node on a work queue.

Two watch threads (ClusterPolicy first, so no node is published under a guessed strategy; then nodes with the
selector `nvidia.com/gpu.present=true`) keep the latest objects; every change queues the node's name. Workers take
names off the queue, one worker per node at a time, and run on that node, in order: the GPU Operator's labels,
mig-manager, then (when no reconfiguration is under way) the device plugin's status and GFD's labels. Each watch
relists every `resync` seconds and after any error; while the API server is away every call is retried with
backoff, so a restarted kube-apiserver costs a pause, not a lost node.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator
from typing import cast

from mig_conformance.simulators.agents import bottlerocket, device_plugin, dra_driver, gfd, gpu_operator, mig_manager
from mig_conformance.simulators.agents.api import ApiError, Gone, NotFound, Obj, Unavailable
from mig_conformance.simulators.agents.context import BACKOFF_MAX, BACKOFF_START, Context, Policy, Stopped
from mig_conformance.simulators.agents.node import GPUS_ANNOTATION, NodeAgent, forget_nvml

log = logging.getLogger("mig_conformance.agents")
ERROR_RETRY = 2.0  # seconds before a node whose reconcile failed is tried again


def _name(obj: Obj) -> str:
    return cast(str, obj["metadata"]["name"])


def _uid(obj: Obj | None) -> str | None:
    return cast(str | None, (obj or {}).get("metadata", {}).get("uid"))


class Agents:
    """mig-manager, device plugin, GFD (and the operator's labels) for every GPU node, in one process."""

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx
        self.nodes: dict[str, NodeAgent] = {}
        self._deleted: set[str] = set()
        self._lock = threading.Lock()
        self._policy_listed = threading.Event()
        self._nodes_listed = threading.Event()
        self._threads: list[threading.Thread] = []
        self._warned: set[str] = set()

    # ---- lifecycle ---------------------------------------------------------------------------------------
    def start(self) -> None:
        ctx = self.ctx
        self._spawn("watch-clusterpolicy", self._watch_loop, "clusterpolicies", ctx.api.list_policies,
                    ctx.api.watch_policies, self._policies_listed, self._policy_event, None)
        self._spawn("watch-nodes", self._watch_loop, "nodes", lambda: ctx.api.list_nodes(ctx.options.node_selector),
                    lambda rv, t: ctx.api.watch_nodes(ctx.options.node_selector, rv, t),
                    self._nodes_list, self._node_event, self._policy_listed)
        for i in range(max(1, ctx.options.workers)):
            self._spawn(f"worker-{i}", self._work)

    def _spawn(self, name: str, target: Callable[..., None], *args: object) -> None:
        thread = threading.Thread(target=target, args=args, name=name, daemon=True)
        thread.start()
        self._threads.append(thread)

    def wait_ready(self, timeout: float) -> bool:
        """Both lists done and every node reconciled once (mig-manager runs may still be under way)."""
        deadline = self.ctx.clock() + timeout
        for event in (self._policy_listed, self._nodes_listed):
            if not event.wait(max(0.0, deadline - self.ctx.clock())):
                return False
        return self.ctx.queue.wait_idle(max(0.0, deadline - self.ctx.clock()))

    def stop(self, timeout: float = 5.0) -> None:
        """Stop watching and working; a run in its delay stays where it is (as when mig-manager is stopped)."""
        self.ctx.stop.set()
        self.ctx.queue.shut_down()
        deadline = self.ctx.clock() + timeout
        for thread in self._threads:
            if thread.name.startswith("worker"):
                thread.join(max(0.0, deadline - self.ctx.clock()))

    # ---- watches -----------------------------------------------------------------------------------------
    def _watch_loop(self, what: str, list_fn: Callable[[], tuple[list[Obj], str]],
                    watch_fn: Callable[[str, int], Iterator[tuple[str, Obj]]],
                    on_list: Callable[[list[Obj]], None], on_event: Callable[[str, Obj], None],
                    after: threading.Event | None) -> None:
        ctx = self.ctx
        if after is not None:
            while not after.wait(0.5):
                if ctx.stop.is_set():
                    return
        delay, down = BACKOFF_START, False
        while not ctx.stop.is_set():
            try:
                items, rv = list_fn()
                on_list(items)
                if down:
                    log.info("watch %s: API server reachable again; relisted %d", what, len(items))
                delay, down = BACKOFF_START, False
                for kind, obj in watch_fn(rv, ctx.options.resync):
                    if ctx.stop.is_set():
                        return
                    if kind in ("ADDED", "MODIFIED", "DELETED"):
                        on_event(kind, obj)
            except Gone:
                continue  # relist at once
            except Unavailable as exc:
                if not down:
                    log.warning("watch %s: API server unavailable (%s); retrying", what, exc)
                down = True
            except ApiError as exc:
                log.error("watch %s: %s", what, exc)
            except Exception:
                log.exception("watch %s failed", what)
            else:
                continue  # the watch timed out: relist (resync)
            ctx.stop.wait(delay)
            delay = min(delay * 2, BACKOFF_MAX)

    def _policies_listed(self, items: list[Obj]) -> None:
        self._set_policy(items[0] if items else None)
        self._policy_listed.set()

    def _policy_event(self, kind: str, obj: Obj) -> None:
        self._set_policy(None if kind == "DELETED" else obj)

    def _set_policy(self, obj: Obj | None) -> None:
        policy = Policy.from_object(obj)
        if obj is None and not self._policy_listed.is_set():
            log.warning("no ClusterPolicy (clusterpolicies.nvidia.com): using the GPU Operator defaults %s", policy)
        if policy == self.ctx.policy:
            return
        log.info("ClusterPolicy: %s", policy)
        self.ctx.policy = policy
        self._queue_all()

    def _nodes_list(self, items: list[Obj]) -> None:
        listed = {_name(o): o for o in items}
        with self._lock:
            gone = [n for n in self.nodes if n not in listed]
        for name in gone:
            self._node_event("DELETED", {"metadata": {"name": name}})
        for obj in items:
            self._node_event("ADDED", obj)
        self._nodes_listed.set()

    def _node_event(self, kind: str, obj: Obj) -> None:
        name = _name(obj)
        with self._lock:
            node = self.nodes.get(name)
            if kind == "DELETED" or (node is not None and _uid(node.obj) != _uid(obj)):
                if self.nodes.pop(name, None) is not None:
                    self._deleted.add(name)
                    log.info("node %s deleted", name)
                node = None
            if kind != "DELETED":
                if node is None:
                    node = self.nodes[name] = NodeAgent(name)
                node.seen(obj)
        self.ctx.queue.add(name)

    def _queue_all(self) -> None:
        with self._lock:
            names = list(self.nodes)
        for name in names:
            self.ctx.queue.add(name)

    # ---- work --------------------------------------------------------------------------------------------
    def _work(self) -> None:
        queue = self.ctx.queue
        while (name := queue.get()) is not None:
            try:
                self.reconcile(name)
            except Stopped:
                pass
            except Exception:
                log.exception("node %s: reconcile failed; retrying in %.0fs", name, ERROR_RETRY)
                queue.add_after(name, ERROR_RETRY)
            finally:
                queue.done(name)

    def reconcile(self, name: str) -> None:
        """Bring one node in line (call with its work-queue key held)."""
        ctx = self.ctx
        with self._lock:
            if name in self._deleted:
                self._deleted.discard(name)
                forget_nvml(ctx.options.state_dir, name)
            node = self.nodes.get(name)
        if node is None or node.obj is None:
            return
        gpus = node.ensure_gpus(ctx)
        if gpus is None:
            if name not in self._warned:
                self._warned.add(name)
                log.warning("node %s: no GPUs known (no %s annotation, no known instance type); ignored", name,
                            GPUS_ANNOTATION)
            return
        try:
            if (settings := bottlerocket.settings_of(node.obj)) is not None:  # no GPU Operator on this node
                bottlerocket.reconcile(ctx, node, settings)
                return
            extra = gpu_operator.pending_labels(node, ctx.policy.default_config)
            if extra:
                node.patch_metadata(ctx, {"labels": extra})
            mig_manager.reconcile(ctx, node)
            if node.run is None:
                self.publish(node)
        except NotFound:
            log.info("node %s: gone while being reconciled", name)
        except ApiError as exc:
            if node.run is not None or gpus.current is not None:  # the run cannot report: start it over later
                node.run, gpus.current, node.applied = None, None, None
            log.error("node %s: %s; retrying in %.0fs", name, exc, ERROR_RETRY)
            ctx.queue.add_after(name, ERROR_RETRY)

    def publish(self, node: NodeAgent) -> None:
        """Device plugin (status) first, then GFD labels: a reader that sees the new `nvidia.com/mig.strategy`
        label also sees the resources of that strategy."""
        ctx = self.ctx
        assert node.gpus is not None and node.obj is not None
        states = node.gpus.gpu_states()
        device_plugin.publish(ctx, node, states)
        if dra_driver.enabled(ctx) and not dra_driver.started(node):
            dra_driver.restart(ctx, node)
        meta = gfd.metadata_patch(node.obj, gfd.gfd_labels(ctx.policy.strategy, states, ctx.options.driver,
                                                             node.gpus.gpu_names()))
        if meta:
            node.patch_metadata(ctx, meta)
