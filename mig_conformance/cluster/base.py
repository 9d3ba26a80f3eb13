"""The interface every cluster backend implements. Suites talk only to this."""

from __future__ import annotations

import abc
import logging
import time
from collections.abc import Callable, Collection, Mapping
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Any, TypeVar, assert_never

from mig_conformance.cluster.journal import Change, ChangeKind, Journal
from mig_conformance.common.errors import MigConformanceError
from mig_conformance.k8s import labels as L
from mig_conformance.k8s import mig_config as MC
from mig_conformance.k8s import stack as stack_profile
from mig_conformance.k8s.model import GpuNode, PodRequest, PodStatus
from mig_conformance.k8s.stack import StackProfile

log = logging.getLogger("mig_conformance.cluster")
T = TypeVar("T")


#: After a wait found the API server unreachable, for how many seconds other errors are retried too: a kube-apiserver
#: that has just (re)started serves requests before its RBAC caches have synced and denies them (HTTP 403) meanwhile
#: (kubernetes/kubernetes#121635; the window grows with the number of RBAC objects). A 404 is never retried.
RECOVERY_S = 30.0

#: What `restore()` puts back first: cluster-wide settings (the ClusterPolicy's config name before the ConfigMap it
#: named is deleted), then node labels (2), then the run's namespaces.
RESTORE_ORDER = {ChangeKind.MIG_CONFIG: 0, ChangeKind.MIG_CONFIG_NAME: 0, ChangeKind.MIG_STRATEGY: 1,
                 ChangeKind.CONFIG_MAP: 1, ChangeKind.NAMESPACE: 3}
#: The ConfigMap the kit installs a user's mig-parted file as, on operators that take custom files only by name.
CUSTOM_CONFIG_MAP = "mig-conformance-config"


def restore_sequence(changes: list[Change]) -> list[Change]:
    """The order restore puts changes back in: the ConfigMap, the strategy, labels (newest first), namespaces."""
    return sorted(reversed(changes), key=lambda c: RESTORE_ORDER.get(c.kind, 2))


class ClusterError(MigConformanceError):
    """A backend failure with an actionable message (permission, connectivity, missing component)."""


class TransientError(ClusterError):
    """A failure that may pass (API server restarting, connection refused): waits retry until their deadline."""


class ChangeNotAllowed(ClusterError):
    """A change was attempted on a cluster opened read-only."""


class WaitTimeout(ClusterError):
    """A wait ran past its deadline; the message names what was awaited and the last state seen."""


class Missing(ClusterError):
    """The object an operation names does not exist (a node, a namespace, a ConfigMap)."""


class RestoreIncomplete(ClusterError):
    """Some journaled changes could not be put back; they stay in the journal for `mig-conformance restore`."""

    def __init__(self, restored: list[str], failures: list[str]) -> None:
        super().__init__(f"{len(failures)} change(s) could not be restored: " + "; ".join(failures))
        self.restored = restored
        self.failures = failures


@dataclass(frozen=True)
class WaitProgress:
    """One poll of a long wait, for a progress display: what is awaited, the state seen, and the seconds waited so
    far and allowed, on the cluster's clock (simulated on sim)."""

    what: str
    state: str
    elapsed: float
    timeout: float

    def text(self) -> str:
        """The state first: a narrow status line keeps it."""
        return f"{self.state} (waiting {self.elapsed:.0f}s of {self.timeout:.0f}s for {self.what})"


class Cluster(abc.ABC):
    """One Kubernetes cluster with GPU nodes and the NVIDIA GPU Operator (real or simulated).

    Changes go through set_node_label / set_mig_strategy / set_mig_config, which record the original
    value in `journal` first and refuse when the cluster was opened read-only; `restore()` puts every
    recorded value back.
    """

    kind: str = ""  # sim | local | kind | eks | kubeconfig
    poll_interval: float = 0.5
    #: Optional callback showing the state of a long wait (a TTY status line, or a log line now and then); called on
    #: every poll, and with None when the wait ends (erase the status).
    progress: Callable[[WaitProgress | None], None] | None = None
    #: Optional callback for work over many nodes (creating a simulated fleet, restoring, waiting for mig-manager to
    #: re-apply): (what, done, total) after each one; it decides what to show (see report.terminal.CountProgress).
    fleet_progress: Callable[[str, int, int], None] | None = None

    def __init__(self, name: str, allow_changes: bool = False, journal: Journal | None = None) -> None:
        self.name = name
        self.allow_changes = allow_changes
        self.journal = journal or Journal(cluster=name)
        #: the GPU stack's versions: chosen on sim/local (the backends model them), detected on real clusters
        self.stack: StackProfile = stack_profile.default()

    # ---- reading (backend-specific) ------------------------------------------------------------
    @abc.abstractmethod
    def describe(self) -> dict[str, Any]:
        """Facts for TARGET.yaml: Kubernetes version, operator/plugin versions, driver, platform."""

    @abc.abstractmethod
    def list_gpu_nodes(self, selector: Mapping[str, str] | None = None) -> list[GpuNode]:
        """Nodes with NVIDIA GPUs, optionally filtered by labels."""

    @abc.abstractmethod
    def get_node(self, name: str) -> GpuNode: ...

    @abc.abstractmethod
    def get_mig_strategy(self) -> str:
        """The ClusterPolicy's spec.mig.strategy (none | single | mixed)."""

    @abc.abstractmethod
    def get_mig_config(self) -> tuple[str, str]:
        """(ConfigMap name, mig-parted file text) that mig-manager uses."""

    def node_mig_config(self, node: str) -> MC.EffectiveConfig:
        """The file mig-manager reads on `node`: generated (`<node>-mig-config`), custom or static
        (k8s/mig_config.py). Backends that know per-node configs override this; by default the cluster-wide one."""
        name, text = self.get_mig_config()
        return MC.EffectiveConfig(MC.STATIC if name == MC.STATIC_CONFIG_MAP else MC.CUSTOM, name, text,
                                  "the ConfigMap the ClusterPolicy names")

    # ---- raw reads (diagnose) ---------------------------------------------------------------------
    def list_objects(self, kind: str) -> list[dict[str, Any]]:
        """Raw objects of one kind as the API server returns them (Node, Pod, DaemonSet, ConfigMap, ClusterPolicy,
        ResourceSlice, Event; namespaced kinds in the operator namespace): the read-only diagnose reader's input."""
        raise ClusterError(f"{self.name}: the {self.kind} backend cannot list {kind} objects")

    def get_object(self, kind: str, name: str) -> dict[str, Any] | None:
        """One raw object of `kind` by name, None when it does not exist (for readers allowed get but not list)."""
        return next((o for o in self.list_objects(kind) if (o.get("metadata") or {}).get("name") == name), None)

    def wall_clock(self) -> float:
        """Seconds since the epoch on the clock the cluster's timestamps use (sim: its simulated clock)."""
        return time.time()

    # ---- writing (backend-specific, called only through the journaled methods) ---------------
    @abc.abstractmethod
    def _write_node_label(self, node: str, key: str, value: str | None) -> None: ...

    @abc.abstractmethod
    def _write_mig_strategy(self, strategy: str) -> None: ...

    @abc.abstractmethod
    def _write_mig_config(self, text: str) -> None: ...

    # ---- custom configs by name (GPU Operator v26.3.0+; backends that support it override these) -----------
    def policy_config_name(self) -> str | None:
        """The ClusterPolicy's spec.migManager.config.name (None: unset or empty)."""
        return self.get_mig_config()[0]

    def custom_config_needs_name(self) -> bool | None:
        """Whether mig-manager takes a custom file only through spec.migManager.config.name (GPU Operator v26.3.0+,
        `StackProfile.custom_config_needs_name`); None: the operator version is unknown."""
        return None

    def read_config_map(self, name: str) -> tuple[str, dict[str, str]] | None:
        """A ConfigMap of the operator namespace: (its config.yaml, its labels); None when it does not exist."""
        raise ClusterError(f"{self.name}: the {self.kind} backend cannot read ConfigMaps")

    def _write_config_map(self, name: str, text: str | None) -> None:
        """Create or replace (None: delete) a ConfigMap of the operator namespace holding config.yaml."""
        raise ClusterError(f"{self.name}: the {self.kind} backend cannot write ConfigMaps")

    def _write_policy_config_name(self, name: str | None) -> None:
        """Set (None: remove) spec.migManager.config.name; mig-manager restarts with the file it names."""
        raise ClusterError(f"{self.name}: the {self.kind} backend cannot set spec.migManager.config.name")

    def wait_mig_manager_restarted(self, timeout: float) -> None:  # noqa: B027 - nothing to wait for by default
        """After spec.migManager.config.name changed: wait until mig-manager runs with the new file everywhere."""

    @abc.abstractmethod
    def observe_label(self, node: str, key: str) -> AbstractContextManager[list[str | None]]:
        """While the context is open, every value the node's label takes, in order, as a watch delivers them
        (None: removed; consecutive repeats dropped) — also values a poll would miss between two reads."""

    # ---- pods (read-only clusters refuse every write: pods take GPU slices from real workloads) -------
    def create_namespace(self, name: str, labels: Mapping[str, str]) -> None:
        self._check_allowed(f"create namespace {name}")
        self._create_namespace(name, labels)

    def delete_namespace(self, name: str) -> None:
        self._check_allowed(f"delete namespace {name}")
        self._delete_namespace(name)

    def create_pod(self, namespace: str, pod: PodRequest) -> None:
        """Create a pod; invalid specs raise ClusterError with the API server's message."""
        self._check_allowed(f"create pod {namespace}/{pod.name}")
        self._create_pod(namespace, pod)

    def delete_pod(self, namespace: str, name: str) -> None:
        self._check_allowed(f"delete pod {namespace}/{name}")
        self._delete_pod(namespace, name)

    @abc.abstractmethod
    def _create_namespace(self, name: str, labels: Mapping[str, str]) -> None: ...

    @abc.abstractmethod
    def _delete_namespace(self, name: str) -> None: ...

    @abc.abstractmethod
    def _create_pod(self, namespace: str, pod: PodRequest) -> None: ...

    @abc.abstractmethod
    def _delete_pod(self, namespace: str, name: str) -> None: ...

    @abc.abstractmethod
    def get_pod(self, namespace: str, name: str) -> PodStatus: ...

    @abc.abstractmethod
    def list_pods(self, namespace: str) -> list[PodStatus]: ...

    # ---- DRA (resource.k8s.io/v1): read anywhere; claims live in the run's namespaces ------------------
    def list_resource_slices(self, driver: str | None = None) -> list[dict[str, Any]]:
        """ResourceSlices (API form), those of `driver` only when given; [] where the cluster serves no DRA API."""
        return []

    def list_device_classes(self) -> list[dict[str, Any]]:
        return []

    def create_resource_claim(self, namespace: str, claim: Mapping[str, Any]) -> None:
        """Create a ResourceClaim (or, with kind ResourceClaimTemplate, a template) in a namespace of this run."""
        self._check_allowed(f"create {claim.get('kind', 'ResourceClaim')} {namespace}/"
                            f"{(claim.get('metadata') or {}).get('name')}")
        self._create_resource_claim(namespace, claim)

    def _create_resource_claim(self, namespace: str, claim: Mapping[str, Any]) -> None:
        raise ClusterError(f"the {self.kind} backend does not create ResourceClaims")

    def get_resource_claim(self, namespace: str, name: str) -> dict[str, Any]:
        """A ResourceClaim with its status (allocation, reservedFor)."""
        raise ClusterError(f"the {self.kind} backend does not read ResourceClaims")

    def list_resource_claims(self, namespace: str) -> list[dict[str, Any]]:
        return []

    # ---- journaled changes ----------------------------------------------------------------------
    def _check_allowed(self, what: str) -> None:
        if not self.allow_changes:
            raise ChangeNotAllowed(f"{self.name}: refusing to {what}: the cluster is open read-only "
                                   "(pass --mig-allow-reconfigure to allow changes)")

    def set_node_label(self, node: str, key: str, value: str | None) -> None:
        """Set (or with None remove) a node label, recording its original value first."""
        self._check_allowed(f"set label {key}={value} on node {node}")
        self.journal.record(ChangeKind.NODE_LABEL, node, key, self.get_node(node).labels.get(key))
        self._write_node_label(node, key, value)

    def original_node_label(self, node: str, key: str) -> str | None:
        """The label's value before this run changed it (the journal's), else its value now."""
        for change in self.journal.changes:
            labels = (ChangeKind.NODE_LABEL, ChangeKind.MIG_CONFIG_LABEL)
            if change.target == node and change.key == key and change.kind in labels:
                return change.original
        return self.get_node(node).labels.get(key)

    def request_mig_config(self, node: str, config: str) -> bool:
        """Ask mig-manager to apply `config` on `node`; False when the node is labelled so already.

        One journaled change holds the original `nvidia.com/mig.config` and `nvidia.com/mig.config.state`. The old
        verdict is removed before the label changes, so that a stale `success` is never mistaken for the new one
        (mig-manager writes the state; the kit only clears it)."""
        self._check_allowed(f"set label {L.MIG_CONFIG}={config} on node {node}")
        labels = self.get_node(node).labels
        if labels.get(L.MIG_CONFIG) == config:
            return False
        self.journal.record(ChangeKind.MIG_CONFIG_LABEL, node, L.MIG_CONFIG, labels.get(L.MIG_CONFIG),
                            labels.get(L.MIG_CONFIG_STATE))
        if L.MIG_CONFIG_STATE in labels:
            self._write_node_label(node, L.MIG_CONFIG_STATE, None)
        self._write_node_label(node, L.MIG_CONFIG, config)
        return True

    def set_mig_strategy(self, strategy: str) -> None:
        self._check_allowed(f"set the MIG strategy to {strategy}")
        self.journal.record(ChangeKind.MIG_STRATEGY, "cluster-policy", None, self.get_mig_strategy())
        self._write_mig_strategy(strategy)

    def set_mig_config(self, text: str) -> str:
        """Make mig-manager read `text`; returns the ConfigMap that holds it.

        Where a custom file reaches mig-manager only through spec.migManager.config.name (GPU Operator v26.3.0+;
        an operator of unknown version whose ClusterPolicy names no ConfigMap) the text goes into the ConfigMap
        `mig-conformance-config` and the ClusterPolicy names it: both journaled first (the ConfigMap's original
        text or absence, the name's original value or absence), then mig-manager restarts (waited for with
        `wait_mig_manager_restarted`). Otherwise the ConfigMap the ClusterPolicy names gets the new text (journaled)."""
        self._check_allowed("replace the mig-parted config")
        needs_name = self.custom_config_needs_name()
        current = self.policy_config_name()
        if needs_name is False or (needs_name is None and current):
            name, original = self.get_mig_config()
            self.journal.record(ChangeKind.MIG_CONFIG, name, None, original)
            self._write_mig_config(text)
            return name
        name = CUSTOM_CONFIG_MAP
        existing = self.read_config_map(name)
        self.journal.record(ChangeKind.CONFIG_MAP, name, None, None if existing is None else existing[0])
        self.journal.record(ChangeKind.MIG_CONFIG_NAME, "cluster-policy", None, current)
        self._write_config_map(name, text)
        if current != name:
            self._write_policy_config_name(name)
        return name

    def create_run_namespace(self, name: str, labels: Mapping[str, str]) -> None:
        """Create the run's namespace, journaled first so that `restore()` (or a later restore) deletes it.
        Read-only clusters refuse it: pods are changes too (they take GPU slices from real workloads)."""
        self._check_allowed(f"create namespace {name} for test pods")
        self.journal.record(ChangeKind.NAMESPACE, name, None, None)
        try:
            self.create_namespace(name, labels)
        except ClusterError as exc:
            if not isinstance(exc, TransientError):  # the API server said no: nothing to delete later
                self.journal.forget(ChangeKind.NAMESPACE, name, None)
            raise  # a timeout or an interrupt may come after the namespace exists: it stays journaled

    def restore(self, namespaces: bool = False, kinds: Collection[str] | None = None,
                targets: Collection[str] | None = None) -> list[str]:
        """Put back every journaled original value (only of `kinds` / of `targets` such as node names, when
        given); returns what was restored.

        Order: the mig-parted ConfigMap, then the ClusterPolicy strategy, then node labels, then namespaces, each
        newest first, so that mig-manager re-applies a restored `nvidia.com/mig.config` with the original config
        file (and the device plugin under the original strategy).

        `namespaces=True` also deletes the namespaces the run created (the session's end and
        `mig-conformance restore` do that; a test restoring in the middle of a run keeps the run namespace).
        Every change is tried even when one fails; failed ones stay in the journal and RestoreIncomplete
        (with `.restored` and `.failures`) is raised at the end.
        """
        done: list[str] = []
        remaining: list[Change] = []
        failures: list[str] = []
        def kept(change: Change) -> bool:
            return ((change.kind == ChangeKind.NAMESPACE and not namespaces)
                    or (kinds is not None and change.kind not in kinds)
                    or (targets is not None and change.target not in targets))

        sequence = restore_sequence(self.journal.changes)
        total, count = sum(not kept(c) for c in sequence), 0
        for change in sequence:
            if kept(change):
                remaining.insert(0, change)
                continue
            what = describe_change(change)
            try:
                self._restore_one(change)
            except Missing as exc:
                done.append(f"{what} (gone: {exc})")
            except Exception as exc:
                log.error("could not restore %s: %s", what, exc)
                remaining.insert(0, change)
                failures.append(f"{what}: {exc}")
            else:
                done.append(what)
            count += 1
            self._count("restoring the changes of this run", count, total)
        self.journal.replace(remaining)
        if failures:
            raise RestoreIncomplete(done, failures)
        return done

    def _restore_one(self, change: Change) -> None:
        if change.kind == ChangeKind.NODE_LABEL:
            self._write_node_label(change.target, change.key or "", change.original)
        elif change.kind == ChangeKind.MIG_CONFIG_LABEL:
            self._restore_mig_config_label(change)
        elif change.kind == ChangeKind.MIG_STRATEGY and change.original is not None:
            self._write_mig_strategy(change.original)
        elif change.kind == ChangeKind.MIG_CONFIG and change.original is not None:
            self._write_mig_config(change.original)
        elif change.kind == ChangeKind.NAMESPACE:
            self.delete_namespace(change.target)
        elif change.kind == ChangeKind.CONFIG_MAP:
            self._write_config_map(change.target, change.original)
        elif change.kind == ChangeKind.MIG_CONFIG_NAME and self.policy_config_name() != change.original:
            self._write_policy_config_name(change.original)

    def _restore_mig_config_label(self, change: Change) -> None:
        """Label the node back as mig-manager's user would: when the label differs, clear the verdict and relabel
        (mig-manager re-applies the original config and writes the state). When the label is the original but the
        verdict is gone (the run died between clearing it and relabelling), or the node had no label (mig-manager
        then does nothing), put the original state back; a verdict mig-manager wrote is never overwritten."""
        node = change.target
        labels = self.get_node(node).labels
        if labels.get(L.MIG_CONFIG) != change.original:
            if L.MIG_CONFIG_STATE in labels:
                self._write_node_label(node, L.MIG_CONFIG_STATE, None)
            self._write_node_label(node, L.MIG_CONFIG, change.original)
            if change.original is not None:
                return
        verdict_gone = change.original is None or L.MIG_CONFIG_STATE not in labels
        if verdict_gone and labels.get(L.MIG_CONFIG_STATE) != change.original_state:
            self._write_node_label(node, L.MIG_CONFIG_STATE, change.original_state)

    def leftovers(self, run_id: str, namespaces: tuple[str, ...] = ()) -> list[str]:
        """Objects of run `run_id` still present (pods, namespaces), as "kind name" lines.

        The default asks only `list_pods` of the given namespaces; API backends search the whole cluster.
        """
        out = []
        for ns in namespaces:
            try:
                pods = self.list_pods(ns)
            except Missing:  # the namespace is gone, and its pods with it
                continue
            except ClusterError as exc:  # e.g. no permission: say the check is incomplete, never "nothing left"
                out.append(f"leak check failed: cannot list the pods of namespace {ns}: {exc}")
                continue
            out += [f"pod {ns}/{p.name}" for p in pods]
        return out

    # ---- waiting --------------------------------------------------------------------------------
    def _wait(self, fetch: Callable[[], T], predicate: Callable[[T], bool], timeout: float, what: str,
              describe: Callable[[T], str]) -> T:
        """Poll fetch() until predicate holds; log each change of the described state."""
        try:
            return self._poll(fetch, predicate, timeout, what, describe)
        finally:
            if self.progress is not None:
                self.progress(None)

    def _poll(self, fetch: Callable[[], T], predicate: Callable[[T], bool], timeout: float, what: str,
              describe: Callable[[T], str]) -> T:
        started = self.clock()
        deadline = started + timeout
        last_desc = None
        since = started  # when the described state last changed
        outage: float | None = None  # when the API server was last unreachable during this wait
        while True:
            try:
                value = fetch()
            except ClusterError as exc:
                transient = isinstance(exc, TransientError)
                if transient:
                    outage = self.clock()
                elif (isinstance(exc, Missing) or outage is None
                      or self.clock() - outage > RECOVERY_S):
                    raise
                if self.clock() >= deadline:
                    seen = f"; last state seen: {last_desc}" if last_desc is not None else ""
                    raise WaitTimeout(f"timed out after {seconds_text(self.clock() - started)} waiting for {what}; "
                                      f"last error: {exc}{seen}") from None
                log.warning("%s: %s (retrying%s)", what, exc, "" if transient else
                            ": the API server came back moments ago and may still be syncing its caches")
                self.sleep(min(self.poll_interval * 2, max(0.0, deadline - self.clock())))
                continue
            desc = describe(value)
            if self.progress is not None:
                self.progress(WaitProgress(what, desc, self.clock() - started, timeout))
            if desc != last_desc:
                log.info("%s: %s", what, desc)
                last_desc = desc
                since = self.clock()
            if predicate(value):
                return value
            if self.clock() >= deadline:
                # how long it has not moved tells a stuck component (no progress at all) from a slow one
                raise WaitTimeout(f"timed out after {seconds_text(self.clock() - started)} waiting for {what}; "
                                  f"last state: {desc} (unchanged for the last {seconds_text(self.clock() - since)})")
            self.sleep(min(self.poll_interval, max(0.0, deadline - self.clock())))

    def _count(self, what: str, done: int, total: int) -> None:
        if self.fleet_progress is not None:
            self.fleet_progress(what, done, total)

    def clock(self) -> float:
        """Seconds on the clock that waits measure; the sim backend's clock is simulated."""
        return time.monotonic()

    def sleep(self, seconds: float) -> None:
        """Waiting primitive; the sim backend advances simulated time instead of sleeping."""
        time.sleep(seconds)

    def wait_for_node(self, name: str, predicate: Callable[[GpuNode], bool], timeout: float,
                      what: str) -> GpuNode:
        """Wait until predicate(node) holds; WaitTimeout names `what`, the node and its last state; Missing says that
        the node was deleted while waiting (and what it showed last)."""
        seen: list[str] = []

        def describe(node: GpuNode) -> str:
            state = node.labels.get("nvidia.com/mig.config.state", "-")
            seen[:] = [f"node {name} mig.config={node.labels.get('nvidia.com/mig.config', '-')} state={state}"]
            return seen[0]
        try:
            return self._wait(lambda: self.get_node(name), predicate, timeout, what, describe)
        except Missing:
            last = f"; last state seen: {seen[0]}" if seen else ""
            raise Missing(f"{self.name}: node {name} is gone: it was deleted while the kit waited for {what}{last}") \
                from None

    def wait_for_pod(self, namespace: str, name: str, predicate: Callable[[PodStatus], bool], timeout: float,
                     what: str) -> PodStatus:
        def describe(p: PodStatus) -> str:
            return f"pod {namespace}/{name} {p.phase} node={p.node or '-'} {p.reason or ''} {p.message or ''}".strip()
        return self._wait(lambda: self.get_pod(namespace, name), predicate, timeout, what, describe)

    def wait_settled(self, nodes: list[str], timeout: float) -> dict[str, str]:
        """After a restore: wait, for all nodes together and up to `timeout`, until mig-manager has a verdict on
        each. Returns node -> its state, or why there is none ("not settled: ..."). The nodes are polled side by
        side until one deadline, so a node that takes all the time does not leave the next a wait of 0s; each
        message says how long the kit really waited."""
        nodes = list(dict.fromkeys(nodes))
        out: dict[str, str] = {}
        seen: dict[str, str] = {}  # node -> its last described state
        since: dict[str, float] = {}  # node -> when that state was first seen
        started = self.clock()

        def fetch() -> dict[str, str]:
            for node in nodes:
                if node in out:
                    continue
                try:
                    found = self.get_node(node)
                except Missing:  # nothing left to re-apply the original config on: reported, not silently passed
                    out[node] = ("not settled: the node was deleted during the run (its original config was not "
                                 "re-applied)")
                    continue
                state = found.labels.get(L.MIG_CONFIG_STATE)
                desc = f"node {node} mig.config={found.labels.get(L.MIG_CONFIG, '-')} state={state or '-'}"
                if seen.get(node) != desc:
                    seen[node], since[node] = desc, self.clock()
                if state in ("success", "failed"):
                    out[node] = f"{found.labels.get(L.MIG_CONFIG)}: {state}"
            self._count("waiting for mig-manager to re-apply the original configs", len(out), len(nodes))
            return out

        def describe(done: dict[str, str]) -> str:
            return "; ".join(seen.get(n, f"node {n}") for n in nodes if n not in done) or "every node settled"

        what = f"mig-manager to re-apply on {nodes[0] if len(nodes) == 1 else f'{len(nodes)} nodes'}"
        try:
            if nodes:
                self._wait(fetch, lambda done: len(done) == len(nodes), timeout, what, describe)
        except WaitTimeout as exc:
            now = self.clock()
            error = str(exc).partition("; last error: ")[2]
            for node in nodes:
                if node not in out:
                    last = (f"; last state: {seen[node]} (unchanged for the last {seconds_text(now - since[node])})"
                            if node in seen else f"; last error: {error}" if error else "")
                    out[node] = (f"not settled: timed out after {seconds_text(now - started)} waiting for mig-manager "
                                 f"to re-apply on {node}{last}")
        except ClusterError as exc:
            for node in nodes:
                out.setdefault(node, f"not settled: {exc}")
        return {node: out[node] for node in nodes}

    def close(self) -> None:  # noqa: B027 - optional hook, most backends hold nothing
        """Release connections/processes. Backends that started something stop it here."""


def seconds_text(seconds: float) -> str:
    """`8s`, `125s`; below a second `0.3s` (a wait of under a second is not "0s")."""
    return f"{seconds:.0f}s" if seconds >= 1 or seconds <= 0 else f"{seconds:.1f}s"


def append_new(values: list[str | None], value: str | None) -> None:
    """Record a label value unless it repeats the last one (a watch also delivers other changes of the node)."""
    if not values or values[-1] != value:
        values.append(value)


def relabelled_nodes(changes: list[Change]) -> dict[str, str | None]:
    """Nodes whose `nvidia.com/mig.config` a restore puts back to a config (mig-manager then re-applies it), with
    the state they had before the run."""
    return {c.target: c.original_state for c in changes
            if c.kind == ChangeKind.MIG_CONFIG_LABEL and c.original is not None}


#: What restoring a node that had no `nvidia.com/mig.config` label leaves (mig-manager ignores a removed label).
KEPT_LAYOUT = "label removed again, but its GPUs keep the layout the run applied (mig-manager does not act on a " \
              "removed label; label the node with the config you want)"


def unlabelled_nodes(changes: list[Change]) -> list[str]:
    """Nodes that had no `nvidia.com/mig.config` before the run labelled them: their layout cannot be restored."""
    return [c.target for c in changes if c.kind == ChangeKind.MIG_CONFIG_LABEL and c.original is None]


def settle_problem(state: str, original_state: str | None) -> bool:
    """A node that mig-manager did not bring back: no verdict in time, or `failed` where it had not failed before."""
    return state.startswith("not settled") or (state.endswith(": failed") and original_state != "failed")


def describe_change(change: Change) -> str:
    """One line naming a journaled change and the value restore puts back."""
    if change.kind == ChangeKind.NODE_LABEL:
        value = "(removed)" if change.original is None else f"={change.original}"
        return f"node {change.target} label {change.key}{value}"
    if change.kind == ChangeKind.MIG_CONFIG_LABEL:
        if change.original is None:
            return f"node {change.target} label {change.key}(removed), state={change.original_state or '(removed)'}"
        return f"node {change.target} label {change.key}={change.original} (mig-manager re-applies it)"
    if change.kind == ChangeKind.MIG_STRATEGY:
        return f"ClusterPolicy MIG strategy={change.original}"
    if change.kind == ChangeKind.MIG_CONFIG:
        return f"ConfigMap {change.target} (mig-parted config, original text)"
    if change.kind == ChangeKind.NAMESPACE:
        return f"namespace {change.target} (deleted)"
    if change.kind == ChangeKind.CONFIG_MAP:
        return f"ConfigMap {change.target} " + ("(deleted)" if change.original is None else "(original text)")
    if change.kind == ChangeKind.MIG_CONFIG_NAME:
        return "ClusterPolicy spec.migManager.config.name" + (
            " (removed)" if change.original is None else f"={change.original}")
    assert_never(change.kind)  # every kind is described above (the journal only loads known kinds)
