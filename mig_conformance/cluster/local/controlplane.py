"""A real Kubernetes control plane on loopback: etcd, kube-apiserver, kube-controller-manager, kube-scheduler, kwok.

Every process runs in its own process group with its own identity (client certificate) and a log file under
`state_dir/logs/`; ports are random free loopback ports; `stop()` leaves no process behind, and so does a failed
or interrupted `start()` (try/except BaseException, SIGTERM/SIGHUP turned into an interrupt while starting, atexit,
and on Linux the kernel kills children whose starting thread died unless the plane is detached for a daemon).
"""

from __future__ import annotations

import atexit
import contextlib
import http.client
import json
import logging
import shutil
import signal
import socket
import ssl
import subprocess
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from mig_conformance.cluster.assets import find_assets
from mig_conformance.cluster.base import ClusterError
from mig_conformance.cluster.local import kubeconfig, kwok_stages, pki, processes
from mig_conformance.cluster.local.processes import Managed
from mig_conformance.cluster.local.rest import Rest, RestError, tls_context

log = logging.getLogger("mig_conformance.cluster.local")

BINARIES = ("etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler", "kwok")
PORTS = ("etcd", "etcd-peer", "kube-apiserver", "kube-controller-manager", "kube-scheduler", "kwok")
SERVICE_CIDR = "10.96.0.0/16"
POD_CIDR = "10.244.0.0/16"
ISSUER = "https://kubernetes.default.svc.cluster.local"
KCM_CONTROLLERS = ("serviceaccount-controller", "serviceaccount-token-controller", "namespace-controller",
                   "garbage-collector-controller", "pod-garbage-collector-controller",
                   "root-ca-certificate-publisher-controller", "node-lifecycle-controller",
                   # DRA: claims from ResourceClaimTemplates, reservedFor cleanup and deallocation when pods go
                   "resourceclaim-controller")
STATE_FILE = "controlplane.json"
PROCESS_FILE = "processes.json"
#: Stop order: clients first, then the API server, then its storage.
STOP_WAVES: tuple[tuple[str, ...], ...] = (("kube-apiserver",), ("etcd",))


class StartInterrupted(KeyboardInterrupt):
    """SIGTERM or SIGHUP arrived while the control plane was starting."""


def free_ports(n: int) -> list[int]:
    """n distinct free TCP ports on 127.0.0.1 (held open together so they differ)."""
    socks = []
    try:
        for _ in range(n):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.bind(("127.0.0.1", 0))
            socks.append(s)
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def port_listening(port: int) -> bool:
    """Does something accept connections on 127.0.0.1:port?"""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.settimeout(0.5)
        return s.connect_ex(("127.0.0.1", port)) == 0


@contextlib.contextmanager
def interruptible() -> Iterator[None]:
    """While starting, turn SIGTERM/SIGHUP into StartInterrupted so cleanup runs (main thread only)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum: int, _frame: object) -> None:
        raise StartInterrupted(f"signal {signal.Signals(signum).name} while starting the local control plane")

    old = {sig: signal.signal(sig, handler) for sig in (signal.SIGTERM, signal.SIGHUP)}
    try:
        yield
    finally:
        for sig, h in old.items():
            signal.signal(sig, h)


def _probe(url: str, ctx: ssl.SSLContext | None) -> tuple[bool, str]:
    """GET url: (2xx?, short description)."""
    scheme, _, rest = url.partition("://")
    hostport, _, path = rest.partition("/")
    host, _, port = hostport.partition(":")
    conn: http.client.HTTPConnection
    if scheme == "https":
        conn = http.client.HTTPSConnection(host, int(port), context=ctx, timeout=2)
    else:
        conn = http.client.HTTPConnection(host, int(port), timeout=2)
    try:
        conn.request("GET", "/" + path)
        resp = conn.getresponse()
        body = resp.read(300).decode(errors="replace").strip()
        return 200 <= resp.status < 300, f"HTTP {resp.status} {body[:200]}"
    except (OSError, http.client.HTTPException) as exc:
        return False, f"{type(exc).__name__}: {exc}"
    finally:
        conn.close()


class ControlPlane:
    """One local control plane under `state_dir` (logs/, pki/, etcd/, kubeconfigs, state files)."""

    def __init__(self, state_dir: Path | str, assets: Mapping[str, Path] | None = None, *,
                 extra_args: Mapping[str, Sequence[str]] | None = None, tie_to_parent: bool = True,
                 timeout: float = 60.0) -> None:
        self.state_dir = Path(state_dir).absolute()
        self.assets = dict(assets) if assets is not None else find_assets(BINARIES)
        missing = [b for b in BINARIES if b not in self.assets]
        if missing:
            raise ClusterError(f"local control plane: no path given for {', '.join(missing)}")
        self.extra_args = {k: list(v) for k, v in (extra_args or {}).items()}
        self.tie_to_parent = tie_to_parent
        self.timeout = timeout
        self.logs = self.state_dir / "logs"
        self.admin_kubeconfig = self.state_dir / "admin.kubeconfig"
        self.procs: dict[str, Managed] = {}
        self.ports: dict[str, int] = {}
        self.pki: pki.Pki | None = None
        self.versions: dict[str, str] = {}
        #: Seconds from start() to each milestone (etcd, kube-apiserver, bootstrap, ready).
        self.timings: dict[str, float] = {}
        self._t0 = 0.0
        self._atexit = False
        self._lock = threading.Lock()

    # ---- facts ------------------------------------------------------------------------------------
    @property
    def server(self) -> str:
        return f"https://127.0.0.1:{self.ports['kube-apiserver']}"

    def admin(self) -> Rest:
        """A JSON client with the admin (system:masters) certificate."""
        assert self.pki is not None
        cert = self.pki.clients["admin"]
        return Rest(self.server, self.pki.ca.cert, cert=cert.cert, key=cert.key)

    def state(self) -> dict[str, Any]:
        return {"server": self.server if self.ports else None, "ports": self.ports, "versions": self.versions,
                "state_dir": str(self.state_dir), "admin_kubeconfig": str(self.admin_kubeconfig),
                "logs": str(self.logs)}

    def _save(self) -> None:
        processes.save(self.state_dir / PROCESS_FILE, self.procs.values())
        (self.state_dir / STATE_FILE).write_text(json.dumps(self.state(), indent=1))

    # ---- processes ----------------------------------------------------------------------------------
    def spawn(self, name: str, argv: Sequence[str], env: Mapping[str, str] | None = None,
              log_file: Path | None = None) -> Managed:
        """Start a process that belongs to this plane (stopped by stop(), recorded for `cluster down`);
        its output goes to `log_file` (default logs/NAME.log)."""
        with self._lock:
            if name in self.procs and processes.alive(self.procs[name]):
                raise ClusterError(f"local control plane: {name} is already running (pid {self.procs[name].pid})")
            proc = processes.spawn(name, argv, log_file or self.logs / f"{name}.log", env=env, cwd=self.state_dir,
                                   tie_to_parent=self.tie_to_parent)
            self.procs[name] = proc
            self._save()
        log.debug("started %s (pid %d): %s", name, proc.pid, " ".join(argv))
        return proc

    def stop_process(self, name: str, grace: float = 10.0) -> None:
        """Stop one process (e.g. the agents, or kube-apiserver for a fault test); restart() brings it back."""
        proc = self.procs.get(name)
        if proc is not None:
            processes.stop([proc], grace)
            self._save()

    def restart(self, name: str, wait: bool = True, grace: float = 2.0) -> Managed:
        """Stop a process and start it again with the same command line (same ports, same identity).
        A short grace: kube-apiserver stops listening at once but waits for its clients' open connections
        (watches of the other components) before it exits, which a restart does not need."""
        old = self.procs.get(name)
        if old is None:
            raise ClusterError(f"local control plane: no process {name} (known: {', '.join(self.procs)})")
        self.stop_process(name, grace)
        env = self._kwok_env() if name == "kwok" else None
        proc = self.spawn(name, old.argv, env=env, log_file=old.log)
        if wait and name in self._probes():
            url, ctx = self._probes()[name]
            self.await_ready(name, url, ctx)
        return proc

    def _probes(self) -> dict[str, tuple[str, ssl.SSLContext | None]]:
        """Readiness URL and TLS context of each component."""
        assert self.pki is not None
        ca = tls_context(self.pki.ca.cert)
        admin = self.pki.clients["admin"]
        return {
            "etcd": (f"http://127.0.0.1:{self.ports['etcd']}/health", None),
            "kube-apiserver": (f"{self.server}/readyz", tls_context(self.pki.ca.cert, admin.cert, admin.key)),
            "kube-controller-manager": (f"https://127.0.0.1:{self.ports['kube-controller-manager']}/healthz", ca),
            "kube-scheduler": (f"https://127.0.0.1:{self.ports['kube-scheduler']}/healthz", ca),
            "kwok": (f"http://127.0.0.1:{self.ports['kwok']}/healthz", None),
        }

    def health(self) -> dict[str, str]:
        """Per process: 'ok', 'not running', or what its health endpoint answered."""
        probes: dict[str, tuple[str, ssl.SSLContext | None]] = {}
        if self.pki is not None and self.ports and any(processes.alive(p) for p in self.procs.values()):
            with contextlib.suppress(OSError, ssl.SSLError):  # certificates already removed by a stop
                probes = self._probes()
        out = {}
        for name, proc in self.procs.items():
            if not processes.alive(proc):
                out[name] = "not running"
            elif name in probes:
                ok, detail = _probe(*probes[name])
                out[name] = "ok" if ok else detail
            else:
                out[name] = "running"
        return out

    def _argv(self, name: str, args: list[str]) -> list[str]:
        return [str(self.assets[name]), *args, *self.extra_args.get(name, [])]

    def await_ready(self, name: str, url: str, ctx: ssl.SSLContext | None, timeout: float | None = None) -> None:
        """Poll url until it answers 2xx; ClusterError with the log tail when the process exits or time runs out."""
        proc = self.procs[name]
        deadline = time.monotonic() + (timeout or self.timeout)
        detail = "not probed"
        while True:
            if not processes.alive(proc):
                code = processes.exit_code(proc)
                raise ClusterError(f"local control plane: {name} exited (code {code}) while starting; "
                                   f"last lines of {proc.log}:\n{processes.log_tail(proc.log)}")
            ok, detail = _probe(url, ctx)
            if ok:
                return
            if time.monotonic() >= deadline:
                raise ClusterError(f"local control plane: {name} not ready after {timeout or self.timeout:.0f}s "
                                   f"({url}: {detail}); last lines of {proc.log}:\n{processes.log_tail(proc.log)}")
            time.sleep(0.1)

    # ---- start --------------------------------------------------------------------------------------
    def start(self, after_launch: Callable[[Rest], None] | None = None) -> None:
        """Start everything and wait until ready. `after_launch(admin)` runs while kube-controller-manager,
        kube-scheduler and kwok come up (bootstrap objects there). Any failure or interrupt stops what started."""
        for attempt in (1, 2):
            if not self._atexit:
                atexit.register(self.stop)
                self._atexit = True
            try:
                with interruptible():
                    self._start(after_launch)
                return
            except ClusterError as exc:
                self.stop()
                if attempt == 2 or "address already in use" not in str(exc):
                    raise
                log.warning("local control plane: a port was taken meanwhile; starting again on new ports")
                self.procs.clear()
            except BaseException:
                self.stop()
                raise

    def mark(self, milestone: str) -> None:
        """Record the seconds since start() began at a milestone."""
        self.timings[milestone] = round(time.monotonic() - self._t0, 3)

    def _start(self, after_launch: Callable[[Rest], None] | None) -> None:
        self._t0 = time.monotonic()
        running = [p for p in processes.load(self.state_dir / PROCESS_FILE) if processes.alive(p)]
        if running and not self.procs:
            raise ClusterError(f"local control plane: {self.state_dir} belongs to a running cluster "
                               f"({running[0].name} pid {running[0].pid}); stop it first")
        self.state_dir.mkdir(parents=True, exist_ok=True)
        shutil.rmtree(self.state_dir / "etcd", ignore_errors=True)  # a fresh cluster, also after a killed run
        self.logs.mkdir(exist_ok=True)
        self.ports = dict(zip(PORTS, free_ports(len(PORTS)), strict=True))
        self.pki = pki.generate(self.state_dir / "pki")
        self._write_kubeconfigs()
        self._start_etcd()
        self.mark("etcd")
        self._start_apiserver()
        self.mark("kube-apiserver")
        admin = self.admin()
        try:
            self._wait_for_bootstrap(admin)
            admin.create_all(kwok_stages.rbac(pki.CLIENTS["kwok"].user, pki.CLIENTS["kwok"].groups[0]),
                             exist_ok=True)
            self._start_kcm()
            self._start_scheduler()
            self._start_kwok()
            if after_launch is not None:
                after_launch(admin)
                self.mark("bootstrap")
        finally:
            admin.close()
        probes = self._probes()
        for name in ("kube-controller-manager", "kube-scheduler", "kwok"):
            self.await_ready(name, *probes[name])
        self.mark("ready")
        self._save()
        log.info("local control plane ready at %s in %.1fs", self.server, self.timings["ready"])

    def _write_kubeconfigs(self) -> None:
        assert self.pki is not None
        for stem, ident in pki.CLIENTS.items():
            pair = self.pki.clients[stem]
            cfg = kubeconfig.build(self.server, self.pki.ca.cert, ident.user, cert=pair.cert, key=pair.key)
            path = self.admin_kubeconfig if stem == "admin" else self.state_dir / f"{stem}.kubeconfig"
            kubeconfig.write(path, cfg)

    def _start_etcd(self) -> None:
        client = f"http://127.0.0.1:{self.ports['etcd']}"
        peer = f"http://127.0.0.1:{self.ports['etcd-peer']}"
        data = self.state_dir / "etcd"
        self.spawn("etcd", self._argv("etcd", [
            "--name=default", f"--data-dir={data}", f"--listen-client-urls={client}",
            f"--advertise-client-urls={client}", f"--listen-peer-urls={peer}",
            f"--initial-advertise-peer-urls={peer}", f"--initial-cluster=default={peer}",
            "--initial-cluster-state=new", "--unsafe-no-fsync=true", "--log-level=warn",
            # one member: a short election timeout only shortens the first election (~1 s -> ~0.1 s)
            "--heartbeat-interval=50", "--election-timeout=250",
            "--quota-backend-bytes=4294967296"]))
        self.await_ready("etcd", *self._probes()["etcd"])
        with contextlib.suppress(OSError, ValueError, http.client.HTTPException):
            conn = http.client.HTTPConnection("127.0.0.1", self.ports["etcd"], timeout=2)
            conn.request("GET", "/version")
            self.versions["etcd"] = json.loads(conn.getresponse().read()).get("etcdserver", "")
            conn.close()

    def _start_apiserver(self) -> None:
        p = self.pki
        assert p is not None
        serving = p.servers["kube-apiserver"]
        self.spawn("kube-apiserver", self._argv("kube-apiserver", [
            f"--etcd-servers=http://127.0.0.1:{self.ports['etcd']}",
            "--bind-address=127.0.0.1", "--advertise-address=127.0.0.1",
            f"--secure-port={self.ports['kube-apiserver']}",
            f"--cert-dir={self.state_dir / 'pki'}",
            f"--tls-cert-file={serving.cert}", f"--tls-private-key-file={serving.key}",
            f"--client-ca-file={p.ca.cert}",
            # Front-proxy settings that delegated authentication (scheduler, controller-manager) reads; no
            # certificate with this CN is ever issued.
            f"--requestheader-client-ca-file={p.ca.cert}", "--requestheader-allowed-names=front-proxy-client",
            "--requestheader-username-headers=X-Remote-User", "--requestheader-group-headers=X-Remote-Group",
            "--requestheader-extra-headers-prefix=X-Remote-Extra-",
            "--authorization-mode=Node,RBAC",
            f"--service-account-issuer={ISSUER}",
            f"--service-account-key-file={p.sa_pub}", f"--service-account-signing-key-file={p.sa_key}",
            f"--service-cluster-ip-range={SERVICE_CIDR}",
            "--endpoint-reconciler-type=none",  # it refuses a loopback advertise address
            "--allow-privileged=true", "--profiling=false", "--v=1"]))
        self.await_ready("kube-apiserver", *self._probes()["kube-apiserver"])

    def _wait_for_bootstrap(self, admin: Rest) -> None:
        """Read the version and wait for the `default` namespace (the API server's bootstrap is done)."""
        deadline = time.monotonic() + self.timeout
        while True:
            try:
                self.versions["kubernetes"] = admin.request("GET", "/version")["gitVersion"]
                admin.get("Namespace", "default")
                return
            except (RestError, OSError) as exc:
                if time.monotonic() >= deadline:
                    raise ClusterError(f"local control plane: API server bootstrap incomplete: {exc}") from None
                time.sleep(0.1)

    def _component_args(self, name: str) -> list[str]:
        assert self.pki is not None
        cfg = self.state_dir / f"{name}.kubeconfig"
        serving = self.pki.servers[name]
        return [f"--kubeconfig={cfg}", f"--authentication-kubeconfig={cfg}", f"--authorization-kubeconfig={cfg}",
                "--bind-address=127.0.0.1", f"--secure-port={self.ports[name]}",
                f"--tls-cert-file={serving.cert}", f"--tls-private-key-file={serving.key}",
                f"--client-ca-file={self.pki.ca.cert}", "--leader-elect=false", "--v=1"]

    def _start_kcm(self) -> None:
        assert self.pki is not None
        self.spawn("kube-controller-manager", self._argv("kube-controller-manager", [
            *self._component_args("kube-controller-manager"),
            f"--controllers={','.join(KCM_CONTROLLERS)}",
            f"--service-account-private-key-file={self.pki.sa_key}", f"--root-ca-file={self.pki.ca.cert}",
            "--use-service-account-credentials=true", "--node-monitor-period=1s",
            # its client's default 20 QPS / burst 30 let the node lifecycle controller untaint ~5 new nodes a second
            # (100 nodes: 20 s before the scheduler may use them); one machine's API server takes far more
            "--kube-api-qps=200", "--kube-api-burst=400",
            f"--flex-volume-plugin-dir={self.state_dir / 'flexvolume'}",  # else it may create a folder in /usr
            f"--cluster-cidr={POD_CIDR}", f"--service-cluster-ip-range={SERVICE_CIDR}"]))

    def _start_scheduler(self) -> None:
        self.spawn("kube-scheduler", self._argv("kube-scheduler", self._component_args("kube-scheduler")))

    def _kwok_env(self) -> dict[str, str]:
        """HOME in the state folder: kwok would otherwise also load a user's ~/.kwok/kwok.yaml."""
        return {"HOME": str(self.state_dir / "kwok"), "PATH": "/usr/bin:/bin"}

    def _start_kwok(self) -> None:
        home = self.state_dir / "kwok"
        home.mkdir(exist_ok=True)
        config = home / "stages.yaml"
        config.write_text(kwok_stages.config_text(self.versions.get("kubernetes", "v0.0.0")))
        key, value = kwok_stages.NODE_ANNOTATION
        env = self._kwok_env()
        self.spawn("kwok", self._argv("kwok", [
            f"--kubeconfig={self.state_dir / 'kwok.kubeconfig'}", f"--config={config}",
            "--manage-all-nodes=false", f"--manage-nodes-with-annotation-selector={key}={value}",
            f"--server-address=127.0.0.1:{self.ports['kwok']}", "--node-lease-duration-seconds=40",
            "--cidr=10.244.0.0/16", "--node-ip=10.0.0.1"]), env=env)
        with contextlib.suppress(OSError, subprocess.SubprocessError):
            out = subprocess.run([str(self.assets["kwok"]), "--version"], capture_output=True, text=True,
                                 timeout=5, env=env).stdout.split()
            if len(out) >= 3:
                self.versions["kwok"] = out[2]

    # ---- stop ---------------------------------------------------------------------------------------
    def stop(self, grace: float = 10.0, keep_data: bool = False) -> None:
        """Stop every process (clients, then kube-apiserver, then etcd); delete etcd data, private keys and
        kubeconfigs (credentials) unless keep_data. Idempotent; logs stay."""
        if self._atexit:
            atexit.unregister(self.stop)
            self._atexit = False
        with self._lock:
            procs = dict(self.procs)
        try:
            stop_processes(procs, grace)
        finally:  # also when a process would not stop: no credentials outlive the cluster's stop
            if self.state_dir.exists():
                self._save()
            if not keep_data:
                shutil.rmtree(self.state_dir / "etcd", ignore_errors=True)
                if self.pki is not None:
                    pki.remove_private_keys(self.pki)
                for path in self.state_dir.glob("*.kubeconfig"):
                    path.unlink(missing_ok=True)

    def detach(self) -> None:
        """Let the processes outlive this Python process (`cluster up`): no atexit stop.
        (Only meaningful with tie_to_parent=False, set before start.)"""
        if self._atexit:
            atexit.unregister(self.stop)
            self._atexit = False

    @classmethod
    def load(cls, state_dir: Path | str) -> ControlPlane:
        """The plane a `cluster up` started (another process): ports, versions, certificates, processes."""
        state_dir = Path(state_dir).absolute()
        try:
            state = json.loads((state_dir / STATE_FILE).read_text())
        except (OSError, ValueError) as exc:
            raise ClusterError(f"no local cluster state in {state_dir} ({exc})") from None
        plane = cls(state_dir, assets=dict.fromkeys(BINARIES, Path("/nonexistent")), tie_to_parent=False)
        plane.ports = {k: int(v) for k, v in state.get("ports", {}).items()}
        plane.versions = dict(state.get("versions", {}))
        plane.pki = pki.existing(state_dir / "pki")
        plane.procs = {p.name: p for p in processes.load(state_dir / PROCESS_FILE)}
        return plane

    def __enter__(self) -> ControlPlane:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def stop_processes(procs: Mapping[str, Managed], grace: float = 10.0) -> None:
    """Stop processes in waves: everything but the API server and etcd, then the API server, then etcd."""
    waves = [[p for n, p in procs.items() if not any(n in w for w in STOP_WAVES)]]
    waves += [[procs[n] for n in wave if n in procs] for wave in STOP_WAVES]
    errors = []
    for wave in waves:
        try:
            killed = processes.stop(wave, grace)
        except OSError as exc:
            errors.append(str(exc))
            continue
        if killed:
            log.warning("local control plane: %s needed SIGKILL", ", ".join(killed))
    if errors:
        raise ClusterError("local control plane: " + "; ".join(errors))
