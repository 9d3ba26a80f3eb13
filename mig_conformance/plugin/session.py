"""The per-run object the plugin registers: owns the cluster connection, the run namespace and the results."""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import logging
import signal
import sys
import threading
from collections.abc import Generator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from mig_conformance.cluster.base import (
    KEPT_LAYOUT,
    Cluster,
    ClusterError,
    RestoreIncomplete,
    WaitProgress,
    relabelled_nodes,
    settle_problem,
    unlabelled_nodes,
)
from mig_conformance.cluster.journal import ChangeKind, Journal
from mig_conformance.cluster.targets import Target, resolve_target
from mig_conformance.common.errors import InputError
from mig_conformance.common.run import RUN_LABEL, new_run_id
from mig_conformance.gpus.catalog import load_catalog
from mig_conformance.k8s import bottlerocket
from mig_conformance.k8s import labels as L
from mig_conformance.k8s.model import GpuNode
from mig_conformance.k8s.node_hardware import node_gpu_boards, node_gpu_models
from mig_conformance.mig.spec import Spec
from mig_conformance.plugin import roles
from mig_conformance.plugin.checks import (
    SAFE_KINDS,
    check_extras,
    check_fleet,
    check_parallel,
    check_settings,
    check_unrestored_journals,
    read_user_config,
)
from mig_conformance.plugin.settings import Settings
from mig_conformance.plugin.signals import INTERRUPT_SIGNALS, DeferSignals
from mig_conformance.plugin.stack_choice import choice_layers, chosen_profile
from mig_conformance.plugin.stack_choice import lines as stack_lines
from mig_conformance.plugin.stack_choice import summary_settings as stack_settings
from mig_conformance.report.collector import ResultCollector
from mig_conformance.report.records import CLEANUP_PROBLEMS, RECORD_PROPERTY, CleanupOutcome, Settled

if TYPE_CHECKING:
    from mig_conformance.k8s.projection import NodeProjection, NodeState
    from mig_conformance.k8s.stack import StackProfile
    from mig_conformance.report.model import RunSummary

log = logging.getLogger("mig_conformance")

ATTACH_KINDS = ("kubeconfig", "eks")  # backends that attach to a cluster that outlives the run
LEAK_WAIT_S = 60.0  # how long the final check waits for the run's namespace to finish terminating


class MigSession:
    """Run-wide state and the pytest hooks that need it (registered as a plugin object)."""

    def __init__(self, config: pytest.Config, settings: Settings) -> None:
        self.config = config
        self.settings = settings
        self.target: Target = resolve_target(settings.cluster or "", settings.clusters_file)
        check_extras(self.target)
        check_settings(settings)
        self.user_config = read_user_config(settings)
        check_fleet(self.target)
        check_parallel(config, self.target, settings)
        check_unrestored_journals(config, settings)
        #: the stack profile sim/local behave as (resolved once, here); None: detected when the cluster is opened
        self.stack: StackProfile | None = chosen_profile(settings, self.target)
        self._worker_id = roles.worker_id(config)
        self.run_id = roles.worker_input(config).get("mig_run_id") or new_run_id()
        # One namespace per xdist worker: a worker deletes its own when it finishes, not the others'.
        suffix = f"-{self._worker_id}" if self._worker_id else ""
        self.namespace = f"mig-conformance-{self.run_id.split('-')[-1]}{suffix}"
        self.timeout = settings.timeout
        self.started = dt.datetime.now(dt.UTC)
        self._cluster: Cluster | None = None
        self._namespace_created = False
        self.evidence: dict[str, Any] = {}
        self._node_states: dict[str, NodeState] = {}  # the projection's view of reconfigured nodes
        self.cleanup: CleanupOutcome | None = None
        self.collector: ResultCollector | None = None
        self._worker_target: dict[str, Any] = {}
        self._worker_evidence: dict[str, Any] = {}
        self._old_signals: dict[int, Any] = {}
        self._defer = DeferSignals()
        from mig_conformance.report.terminal import CountProgress, StatusLine, WaitLog

        self._status = StatusLine(sys.__stderr__)
        # large fleets: a line per tenth of the nodes created, restored, re-applied (xdist workers have no terminal)
        self._counter = CountProgress(self._write_line) if roles.is_main(config) else None
        self._wait_log = WaitLog()
        self._in_test = False  # between pytest's logstart and logfinish of a test: its progress line is open
        if roles.is_main(config):
            self.collector = ResultCollector()
            if threading.current_thread() is threading.main_thread():
                for sig in (signal.SIGINT, *INTERRUPT_SIGNALS):
                    self._old_signals[sig] = signal.signal(sig, self._interrupt)

    # ---- cluster ---------------------------------------------------------------------------------
    @property
    def allow_changes(self) -> bool:
        return self.target.kind in SAFE_KINDS or self.settings.allow_reconfigure

    @property
    def mode(self) -> str:
        """kit-owned | reconfigure | read-only."""
        if self.target.kind in SAFE_KINDS:
            return "kit-owned"
        return "reconfigure" if self.settings.allow_reconfigure else "read-only"

    def mode_line(self) -> str:
        if self.mode == "kit-owned":
            return f"{self.target.kind} (kit-owned cluster: reconfiguration allowed)"
        if self.mode == "reconfigure":
            where = self.journal_path()
            if where is not None and roles.is_controller(self.config):
                where = where.with_name(where.name.replace("journal.json", "journal.gw*.json"))  # one per worker
            return f"{self.target.kind}: RECONFIGURE allowed (every change is journaled to {where} and restored)"
        return f"{self.target.kind}: read-only (mig_disruptive tests are skipped; --mig-allow-reconfigure enables them)"

    def journal_path(self) -> Path | None:
        """Where changes are journaled: the report folder, else (on real clusters) .mig-conformance/ in rootdir."""
        name = f"journal.{self._worker_id}.json" if self._worker_id else "journal.json"
        if self.settings.report:
            return self.settings.report / name
        if self.target.kind == "sim":
            return None
        return Path(self.config.rootpath) / ".mig-conformance" / f"{self.run_id}.{name}"

    def _journal_target(self) -> dict[str, Any]:
        """How `mig-conformance restore` reopens this cluster (no secrets: options are scrubbed)."""
        from mig_conformance.common.scrub import scrub

        options = {k: v for k, v in self.target.options.items() if k != "description"}
        return {"name": self.target.name, "kind": self.target.kind, "arg": self.target.arg,
                "options": scrub(options), "clusters_file": str(self.settings.clusters_file)}

    @property
    def cluster(self) -> Cluster:
        if self._cluster is None:
            from mig_conformance.cluster.registry import open_cluster

            journal = Journal(self.journal_path(), self.run_id, self.target.name, self._journal_target())
            counts: dict[str, Any] = ({"fleet_progress": self._counter} if self.target.kind == "sim" and self._counter
                                      else {})
            if self.stack is not None:
                counts["stack"] = self.stack
            self._cluster = open_cluster(self.target, allow_changes=self.allow_changes, journal=journal,
                                         settings=self.settings, **counts)
            if self.stack is None:
                self._cluster.stack = self._detect_stack(self._cluster)
            if self.collector is not None:
                self._cluster.progress = self._show_progress
            self._cluster.fleet_progress = self._counter
            self.evidence["nodes_before"] = [_node_dict(n) for n in self._cluster.list_gpu_nodes()]
        return self._cluster

    def _detect_stack(self, cluster: Cluster) -> StackProfile:
        """A real cluster's profile: detected (reads only), the run's choices over it; never fails the run."""
        from mig_conformance.cluster.kube import KubeCluster
        from mig_conformance.k8s import stack as stack_profile

        layers = choice_layers(self.settings, self.target)
        if not isinstance(cluster, KubeCluster):
            return stack_profile.resolve(layers, simulated=False)
        try:
            return cluster.detect_stack(layers)
        except Exception as exc:  # detection is best effort: the suites' verdicts do not depend on it
            log.warning("stack detection failed: %s", exc)
            profile = stack_profile.resolve(layers, simulated=False)
            return dataclasses.replace(profile, notes=(*profile.notes, f"stack detection failed: {exc}"))

    def stack_dict(self) -> dict[str, Any] | None:
        """The run's profile as summary.json and TARGET.yaml record it (a worker's, on the xdist controller)."""
        if self._cluster is not None:
            return self._cluster.stack.as_dict()
        if self._worker_target.get("stack"):
            return dict(self._worker_target["stack"])
        return self.stack.as_dict() if self.stack is not None else None

    def nodes(self) -> list[GpuNode]:
        selector = dict(self.target.node_selector)
        if self.settings.instance_type:
            selector[L.INSTANCE_TYPE] = self.settings.instance_type
        return sorted(self.cluster.list_gpu_nodes(selector or None), key=lambda n: n.name)

    def ensure_namespace(self) -> str:
        if not self._namespace_created:
            try:
                self.cluster.create_run_namespace(self.namespace, {"app.kubernetes.io/managed-by": "mig-conformance",
                                                                  RUN_LABEL: self.run_id})
            finally:  # also when the create failed: a namespace still journaled may exist, the leak check looks
                self._namespace_created = any(c.kind == ChangeKind.NAMESPACE and c.target == self.namespace
                                              for c in self.cluster.journal.changes)
        return self.namespace

    # ---- expectations and actions ------------------------------------------------------------------
    def expect(self, node: GpuNode | str, config: str | None, strategy: str | None = None) -> NodeProjection:
        """What `node` should show once labelled `config` under `strategy` (default: the cluster's), projected
        from what the kit knows of the node now (see `_node_state`)."""
        n = self.cluster.get_node(node) if isinstance(node, str) else node
        return self._project(n, config, strategy)

    def _project(self, node: GpuNode, config: str | None, strategy: str | None) -> NodeProjection:
        """The projection as the cluster's stack behaves: its device plugin release and its driver's profile
        memory (the chosen versions on sim/local, the detected ones on real clusters)."""
        from mig_conformance.k8s.projection import project_node

        profile = self.cluster.stack
        now = self.cluster.get_mig_strategy()
        before = self._node_state(node)
        if strategy and strategy != now:  # the device plugin restarts under the new strategy first
            before = before.advertised(strategy, profile.device_plugin_model)
        boards = node_gpu_boards(node)
        models = [load_catalog().model_of(b) for b in boards]
        projected = project_node(models, strategy or now, self._node_spec(node.name), config, node=node.name,
                                 instance_type=node.instance_type, current=before, names=[b.nvml_name for b in boards],
                                 device_plugin_version=profile.device_plugin_model, driver=profile.driver.value)
        if self.runs_dra_driver(node.name):  # no device plugin there: kubelet registers no nvidia.com resources
            projected = dataclasses.replace(projected, allocatable={}, plugin_error=None)
        return projected

    def runs_dra_driver(self, node: str) -> bool:
        """Whether the node publishes a pool of NVIDIA's DRA driver (gpu.nvidia.com ResourceSlices)."""
        from mig_conformance.k8s.dra import DRIVER

        return any(s["spec"].get("nodeName") == node for s in self.cluster.list_resource_slices(DRIVER))

    def _node_spec(self, node: str) -> Spec:
        """The mig-parted file mig-manager reads on `node` (generated, custom or static: `node_mig_config`), parsed
        once per text."""
        return self.cluster.node_mig_config(node).spec

    def _node_state(self, node: GpuNode) -> NodeState:
        """What the projection knows of a node: the state its last projected reconfiguration left, or, for a node
        not reconfigured in this run yet, what its labels and registered resources say."""
        from mig_conformance.k8s.projection import NodeState

        known = self._node_states.get(node.name)
        if known is not None:
            return known
        registered = frozenset(k for k in node.capacity if k.startswith("nvidia.com/"))
        return NodeState.applied(node_gpu_models(node), self._node_spec(node.name), node.labels.get(L.MIG_CONFIG),
                                 node.labels.get(L.MIG_CONFIG_STATE), registered)

    def _show_progress(self, progress: WaitProgress | None) -> None:
        """A long wait, in pytest's live output: on a TTY a status after pytest's progress on the current line (see
        `StatusLine`; None erases it), elsewhere a line now and then (see `WaitLog`)."""
        capman = self.config.pluginmanager.getplugin("capturemanager")
        reporter = self.config.pluginmanager.getplugin("terminalreporter")
        if not self._status.enabled:
            line = self._wait_log.update(progress)
            if line is not None and reporter is not None:
                with capman.global_and_fixture_disabled() if capman is not None else contextlib.nullcontext():
                    _write_between(reporter, line, resume=self._in_test)
            return
        column = reporter._tw.width_of_current_line if reporter is not None else 0
        with capman.global_and_fixture_disabled() if capman is not None else contextlib.nullcontext():
            if progress is None:
                self._status.clear()
            else:
                self._status.update(progress.text(), column)

    def _write_line(self, text: str) -> None:
        """A line in pytest's output, also while a test's output is captured."""
        capman = self.config.pluginmanager.getplugin("capturemanager")
        reporter = self.config.pluginmanager.getplugin("terminalreporter")
        with capman.global_and_fixture_disabled() if capman is not None else contextlib.nullcontext():
            if reporter is not None:
                reporter.ensure_newline()
                reporter.write_line(text)
            else:
                print(text, file=sys.__stderr__, flush=True)

    def reconfigure(self, node: GpuNode | str, config: str, strategy: str | None = None) -> GpuNode:
        """Label `node` with `config` (and set the strategy) and wait until mig-manager reports success|failed
        and, after a strategy change, until GFD publishes the new strategy (the device plugin and GFD restart on
        it; the plugin's resources come first). The projection's view of the node follows (see `expect`)."""
        name = node if isinstance(node, str) else node.name
        before = self.cluster.get_node(name)
        if bottlerocket.is_bottlerocket(before.os_image):
            pytest.skip(f"{name}: {bottlerocket.NO_MIG_MANAGER}")
        projected = self._project(before, config, strategy)
        if strategy and strategy != self.cluster.get_mig_strategy():
            self.cluster.set_mig_strategy(strategy)
            version = self.cluster.stack.device_plugin_model
            self._node_states = {n: s.advertised(strategy, version) for n, s in self._node_states.items()}
        else:
            strategy = None
        what = f"node {name} to apply MIG config {config}" + (f" under strategy {strategy}" if strategy else "")
        with self.cluster.observe_label(name, L.MIG_CONFIG_STATE) as states:
            changed = self.cluster.request_mig_config(name, config)
            node = self.cluster.wait_for_node(name, lambda n: settled(n, strategy), self.timeout, what)
        if projected.after is not None:
            self._node_states[name] = projected.after
        if not changed:
            return node
        # states[0] is the verdict before the request; None is the kit clearing it
        return dataclasses.replace(node, mig_states=tuple(s for s in states[1:] if s is not None))

    # ---- pytest hooks ------------------------------------------------------------------------------
    @pytest.hookimpl(optionalhook=True)
    def pytest_configure_node(self, node: Any) -> None:  # xdist (no types): hand the run id to workers
        node.workerinput["mig_run_id"] = self.run_id

    @pytest.hookimpl(wrapper=True)  # after the terminal's header: a large fleet shows its progress under it
    def pytest_sessionstart(self, session: pytest.Session) -> Generator[None]:
        """Connect once, before collection, where tests run (and, under xdist, in the controller too for clusters
        that outlive the run): a cluster that cannot be opened, or that has no GPU node to test, is one clear
        error instead of a traceback per suite module."""
        yield
        if self._xdist_controller and self.target.kind not in ATTACH_KINDS:
            return  # sim/local/kind clusters belong to each worker
        from mig_conformance.common.errors import InputError
        from mig_conformance.common.extras import missing_extra
        from mig_conformance.plugin.crashes import exit_internal

        try:
            nodes = self.nodes()
        except (ClusterError, InputError) as exc:
            raise pytest.UsageError(f"mig-conformance: cluster {self.target.name} ({self.target.kind}): {exc}") \
                from None
        except Exception as exc:  # a module of an extra that is not installed, else a bug of the kit (exit 3)
            missing = missing_extra(exc, f"--mig-cluster {self.target.name} ({self.target.kind} backend)")
            if missing is not None:
                raise pytest.UsageError(f"mig-conformance: {missing}") from None
            exit_internal(exc, f"while opening cluster {self.target.name}")
        if not nodes:
            raise pytest.UsageError(f"mig-conformance: cluster {self.target.name}: {self._no_nodes_reason()}")

    def _no_nodes_reason(self) -> str:
        """Why there is nothing to test, with what the kit looked for."""
        selection = dict(self.target.node_selector)
        if self.settings.instance_type:
            selection[L.INSTANCE_TYPE] = self.settings.instance_type
        try:
            every = self.cluster.list_gpu_nodes()
        except ClusterError:
            every = []
        if selection and every:
            types = sorted({n.instance_type or "?" for n in every})
            return (f"none of its {len(every)} GPU node(s) match {selection} (instance types there: "
                    f"{', '.join(types)})")
        return ("no GPU nodes: the kit tests nodes labelled nvidia.com/gpu.present=true or advertising "
                "nvidia.com/gpu / nvidia.com/mig-* resources (is the GPU Operator's feature discovery running?)")

    def custom_configs(self) -> list[str]:
        """The named configs of --mig-config-file, in file order (read once when the session started)."""
        return self.user_config.names if self.user_config is not None else []

    def pytest_generate_tests(self, metafunc: pytest.Metafunc) -> None:
        if "mig_node" in metafunc.fixturenames:
            nodes = self.nodes()
            metafunc.parametrize("mig_node", nodes, ids=[f"{n.name}[{n.instance_type or '?'}]" for n in nodes],
                                 scope="function")
        if "mig_custom_config" in metafunc.fixturenames:
            names = self.custom_configs()
            if not names:
                metafunc.parametrize("mig_custom_config", [pytest.param(None, marks=pytest.mark.skip(
                    reason="no --mig-config-file given: nothing custom to test"))], ids=["no-config-file"])
            else:
                metafunc.parametrize("mig_custom_config", names, ids=names)

    def pytest_runtest_logstart(self, nodeid: str, location: tuple[str, int | None, str]) -> None:
        self._in_test = True

    def pytest_runtest_logfinish(self, nodeid: str, location: tuple[str, int | None, str]) -> None:
        self._in_test = False

    def pytest_itemcollected(self, item: pytest.Item) -> None:
        """A test's base record (its category, and its node where it is parametrized over `mig_node`) is known
        when it is collected, so it is attached then: every report of the test carries it, also a skip that pytest
        decides before any setup hook of the kit runs (a `skip` mark of a parametrization, `skipif`)."""
        base: dict[str, Any] = {}
        category = item.get_closest_marker("mig_category")
        if category and category.args:
            base["category"] = str(category.args[0])
        callspec = getattr(item, "callspec", None)  # a parametrized pytest.Function's
        node = callspec and callspec.params.get("mig_node")
        if isinstance(node, GpuNode):
            base.update(node=node.name, instance_type=node.instance_type)
            with contextlib.suppress(InputError, IndexError):  # unknown GPUs: the catalog suite says so
                base["gpu_model"] = node_gpu_models(node)[0].key
        if base:
            item.user_properties.insert(0, (RECORD_PROPERTY, base))  # first: the test's own records win

    def pytest_runtest_setup(self, item: pytest.Item) -> None:
        if item.get_closest_marker("mig_disruptive") and not self.allow_changes:
            pytest.skip(f"changes the cluster {self.target.name}; run with --mig-allow-reconfigure to allow it "
                        "(every change is restored afterwards)")

    @pytest.hookimpl(tryfirst=True)
    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        if self.collector is None:
            return
        longrepr = report.longreprtext if report.failed else (
            str(report.longrepr[2]) if report.skipped and isinstance(report.longrepr, tuple) else "")
        self.collector.add_report(report.nodeid, report.when, report.outcome, report.duration,
                                  list(report.user_properties), longrepr)
        if report.when == "teardown":  # before junitxml writes them: one JSON property, not Python reprs
            from mig_conformance.report.collector import one_record_property

            report.user_properties = one_record_property(report.user_properties)

    def pytest_terminal_summary(self, terminalreporter: pytest.TerminalReporter, exitstatus: int,
                                config: pytest.Config) -> None:
        if self.collector is None or config.option.collectonly:
            return
        from mig_conformance.report.terminal import summary_table

        summary = self._summary(exitstatus)
        terminalreporter.write_sep("=", "mig-conformance summary")
        terminalreporter.write_line(summary_table(summary))
        terminalreporter.write_line(f"mode: {self.mode_line()}")
        for line in stack_lines(self.stack_dict()):
            terminalreporter.write_line(line)
        for line in self.cleanup.lines() if self.cleanup else []:
            red = line.startswith(CLEANUP_PROBLEMS)
            terminalreporter.write_line(line, red=red, bold=red)
        if self.settings.report:
            terminalreporter.write_line(f"report bundle: {self.settings.report}")

    def _interrupt(self, signum: int, frame: Any) -> None:
        """SIGINT/SIGTERM/SIGHUP end the run like Ctrl-C, so that the session's restore runs. Signals are deferred
        from this moment on: one arriving while pytest unwinds (before any hook of ours runs) cannot skip the
        restore."""
        self._defer.start()
        raise KeyboardInterrupt(f"signal {signum}")

    @pytest.hookimpl(tryfirst=True)
    def pytest_keyboard_interrupt(self, excinfo: pytest.ExceptionInfo[BaseException]) -> None:
        """Interrupted some other way (a KeyboardInterrupt raised by code): defer signals from now on too."""
        self._defer.start()

    @property
    def _xdist_controller(self) -> bool:
        return roles.is_controller(self.config)

    @pytest.hookimpl(optionalhook=True)
    def pytest_testnodedown(self, node: Any, error: Any) -> None:
        """xdist controller: keep what the first worker to finish saw of its cluster (TARGET.yaml, evidence)."""
        out = getattr(node, "workeroutput", None) or {}
        if out.get("mig_target") and not self._worker_target:
            self._worker_target, self._worker_evidence = out["mig_target"], out.get("mig_evidence") or {}

    @pytest.hookimpl(trylast=True)
    def pytest_sessionfinish(self, session: pytest.Session, exitstatus: int) -> None:
        target: dict[str, Any] = {}
        if self._xdist_controller:
            self._check_leaks_after_workers()
            target = self._describe_target() if self._cluster is not None else dict(self._worker_target)
            self.evidence = {**self._worker_evidence, **self.evidence}
            if self._cluster is not None:
                self._cluster.close()
        elif self._cluster is not None:
            try:
                with self._defer:
                    self._clean_up(self._cluster)
            finally:
                target = self._describe_target()
                self._cluster.close()
            if roles.is_worker(self.config):  # the controller writes the bundle
                roles.worker_output(self.config)["mig_target"] = target
                roles.worker_output(self.config)["mig_evidence"] = {k: v for k, v in self.evidence.items()
                                                                    if k in ("nodes_before", "nodes_after")}
        if self.collector is None or self.config.option.collectonly:
            return
        summary = self._summary(session.exitstatus)
        if summary.verdict == "Failed" and session.exitstatus == pytest.ExitCode.OK:
            session.exitstatus = pytest.ExitCode.TESTS_FAILED  # nothing validated, or the cluster not put back
        if self.settings.report:
            from mig_conformance.report.bundle import write_bundle
            from mig_conformance.report.signoff import build_signoff

            summary.signoff = build_signoff(summary, self.settings.config_file)
            write_bundle(self.settings.report, summary, target, self.evidence)

    def _clean_up(self, cluster: Cluster) -> None:
        """Restore every journaled change (also the run namespace), then look for leftovers of this run."""
        restored: list[str] = []
        failures: list[str] = []
        relabelled = relabelled_nodes(cluster.journal.changes)
        unlabelled = unlabelled_nodes(cluster.journal.changes)
        try:
            restored = cluster.restore(namespaces=True)
        except RestoreIncomplete as exc:
            restored, failures = exc.restored, exc.failures
        except Exception as exc:  # e.g. the API server is gone: the journal stays for `mig-conformance restore`
            failures = [f"{type(exc).__name__}: {exc}"]
        if restored:
            log.info("restored %d changes on %s", len(restored), self.target.name)
        settled = self._settle(cluster, {} if failures else relabelled)
        settled.update({node: Settled(KEPT_LAYOUT, problem=True) for node in unlabelled})
        self.cleanup = CleanupOutcome(self.mode, restored, failures, settled, self._leftovers(cluster),
                                      str(cluster.journal.path or ""))
        if failures and cluster.journal.path:
            self.cleanup.restore_command = f"mig-conformance restore {cluster.journal.path}"
        elif cluster.journal.path and not self.settings.report:
            cluster.journal.path.unlink(missing_ok=True)  # nothing left to restore: no stray journal
        self.evidence["restored"] = restored
        self.evidence["cleanup"] = self.cleanup.as_dict()
        try:
            self.evidence["nodes_after"] = [_node_dict(n) for n in cluster.list_gpu_nodes()]
        except ClusterError as exc:
            self.evidence["nodes_after_error"] = str(exc)

    def _settle(self, cluster: Cluster, nodes: Mapping[str, str | None]) -> dict[str, Settled]:
        """Wait until mig-manager re-applied the restored configs (xdist workers too: each restored its own);
        per node its state and whether that is a problem (see `settle_problem`)."""
        if not nodes:
            return {}
        states = cluster.wait_settled(list(nodes), self.timeout)
        return {n: Settled(s, settle_problem(s, nodes[n])) for n, s in states.items()}

    def _leftovers(self, cluster: Cluster) -> list[str]:
        """Objects labelled with this run still present; waits a little for namespaces that are terminating.

        xdist workers skip it (their siblings may still run pods); the controller checks after all finished."""
        if self._worker_id is not None:
            return []
        deadline = cluster.clock() + LEAK_WAIT_S  # not --mig-timeout: deleting a namespace takes seconds
        while True:
            try:
                found = cluster.leftovers(self.run_id, (self.namespace,) if self._namespace_created else ())
            except ClusterError as exc:
                return [f"leak check failed: {exc}"]
            if not found or cluster.clock() >= deadline or any(f.startswith("leak check failed") for f in found):
                return found
            cluster.sleep(min(1.0, cluster.poll_interval * 2))

    def _check_leaks_after_workers(self) -> None:
        """xdist controller: every worker has restored and cleaned up; report what their journals still hold and
        look for this run's leftovers once."""
        failures: list[str] = []
        command = ""
        if self.settings.report:
            from mig_conformance.cluster.base import describe_change

            for path in sorted(self.settings.report.glob("journal.*.json")):
                try:
                    left = Journal.load(path).changes
                except (OSError, ValueError) as exc:
                    failures.append(f"{path}: unreadable ({exc})")
                    continue
                failures += [f"{describe_change(c)} ({path.name})" for c in left]
                if left:
                    command = f"mig-conformance restore {self.settings.report}"
        self.cleanup = CleanupOutcome(self.mode, None, failures, restore_command=command or None)
        if self._cluster is not None:  # sim/local/kind clusters are per process: each worker's ended with it
            self.cleanup.leaks = self._leftovers(self._cluster)
        self.evidence["cleanup"] = self.cleanup.as_dict()
        if self._cluster is None:
            return
        try:
            self.evidence["nodes_after"] = [_node_dict(n) for n in self._cluster.list_gpu_nodes()]
        except ClusterError as exc:
            self.evidence["nodes_after_error"] = str(exc)

    def pytest_unconfigure(self, config: pytest.Config) -> None:
        for sig, old in self._old_signals.items():
            signal.signal(sig, old)

    # ---- helpers -----------------------------------------------------------------------------------
    def _describe_target(self) -> dict[str, Any]:
        try:
            info = dict(self._cluster.describe()) if self._cluster else {}
        except Exception as exc:  # describing is best effort; the run's verdict does not depend on it
            info = {"describe_error": str(exc)}
        info.setdefault("cluster", self.target.name)
        info.setdefault("backend", self.target.kind)
        if self._cluster is not None:  # the profile's versions win over what describe() read for TARGET.yaml
            info["stack"] = self._cluster.stack.as_dict()
            info["versions"] = {**(info.get("versions") or {}), **self._cluster.stack.versions()}
        return info

    def _summary(self, exitstatus: int) -> RunSummary:
        from mig_conformance import __version__

        assert self.collector is not None  # its callers return early without one
        return self.collector.summary(
            run_id=self.run_id, started=self.started, finished=dt.datetime.now(dt.UTC), cluster=self.target.name,
            backend=self.target.kind, command_line=" ".join(sys.argv), kit_version=__version__,
            settings={**self.settings.describe(), "mode": {"value": self.mode, "source": "derived"},
                      **stack_settings(self.stack_dict())},
            exitstatus=exitstatus, cleanup=self.cleanup)


def settled(node: GpuNode, strategy: str | None = None) -> bool:
    """mig-manager has a verdict for the node's config and, when `strategy` is given, GFD publishes it (GFD labels
    `nvidia.com/mig.strategy` under single and mixed, none under `none`; nodes without GFD labels only need the
    verdict)."""
    if node.labels.get(L.MIG_CONFIG_STATE) not in ("success", "failed"):
        return False
    if strategy is None or L.GPU_PRODUCT not in node.labels:
        return True
    return node.labels.get(L.MIG_STRATEGY) == (None if strategy == "none" else strategy)


def _write_between(reporter: Any, line: str, resume: bool) -> None:
    """Write a line of our own into pytest's output without breaking its progress line: the part of the current
    line pytest has written (`path.py ..`, or with -v `path.py::test `) is ended and our line follows; during a test
    (`resume`) that part is written again, so that pytest goes on writing its result where it left off."""
    tw = reporter._tw
    current = str(getattr(tw, "_current_line", ""))
    if current:
        tw.line()
    tw.line(line)
    if current and resume:
        tw.write(current)
    tw.flush()


def _node_dict(node: GpuNode) -> Mapping[str, Any]:
    return {"name": node.name, "labels": dict(node.labels), "capacity": dict(node.capacity),
            "allocatable": dict(node.allocatable), "taints": [t.__dict__ for t in node.taints]}
