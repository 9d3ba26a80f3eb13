"""Least privilege, proven on an RBAC-enforcing kube-apiserver (`--authorization-mode=Node,RBAC`).

* `pytest --mig-cluster=local` runs the suites as the ServiceAccount mig-conformance/mig-conformance, and that
  identity is bound to exactly the roles of deploy/rbac.yaml (plus the bootstrap roles every authenticated user has).
* deploy/rbac.yaml is sufficient: every shipped suite passes with it (reconfiguring, with a custom config file), and
  a read-only run passes with the read-only roles alone.
* Every rule is necessary: with any one rule removed, the smallest suite selection that exercises it fails, and the
  output names the missing permission ("access denied: the kit needs permission to <verb> <resource>").

One control plane for the module; each run is a pytest subprocess as a user runs it (`--mig-cluster=kubeconfig:kit`
with a kubeconfig holding the ServiceAccount's token). After each run the cluster is checked to be as before.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from mig_conformance.cluster.local import kit_rbac
from mig_conformance.cluster.local.backend import LocalCluster
from mig_conformance.cluster.local.operator import NAMESPACE as OPERATOR_NAMESPACE
from mig_conformance.cluster.registry import open_cluster
from mig_conformance.plugin.hooks import suites_dir
from support.control_plane import control_plane_assets
from support.kit_runs import assert_left_nothing, kit_kubeconfig, run_pytest, settled_labels

ASSETS = control_plane_assets(module_level=True)
SA_USER = f"system:serviceaccount:{kit_rbac.KIT_NAMESPACE}:{kit_rbac.KIT_SA}"
SA_GROUPS = ("system:serviceaccounts", f"system:serviceaccounts:{kit_rbac.KIT_NAMESPACE}", "system:authenticated")
#: The API server's own bindings (its bootstrap policy) carry this label: what every authenticated user or every
#: ServiceAccount gets (discovery, /version, self reviews, the issuer's keys), not something the kit asked for.
BOOTSTRAP = ("kubernetes.io/bootstrapping", "rbac-defaults")
RBAC_WAIT_S = 10.0

CUSTOM_CONFIG = """version: v1
mig-configs:
  rbac-proof-1g:
    - devices: all
      mig-enabled: true
      mig-devices:
        "1g.10gb": 7
"""


@dataclass(frozen=True)
class Proof:
    """The smallest suite selection that exercises a rule, and the permission its access-denied message names."""

    suite: str  # file of suites/
    test: str  # -k expression (one test)
    permission: str  # "<verb> <resource>" as kube.PERMISSIONS writes it
    reconfigure: bool = False  # needs --mig-allow-reconfigure
    config_file: bool = False  # needs --mig-config-file
    #: exercised only on nodes running NVIDIA's DRA driver, which this module's cluster does not: sufficiency is
    #: proven by tests/control_plane/test_dra_suite_local.py (the dra suite as this identity), necessity skipped
    dra: bool = False

    def args(self, folder: Path) -> list[str]:
        args = [str(suites_dir() / self.suite), "-k", self.test, "--mig-timeout=30"]
        if self.reconfigure:
            args.append("--mig-allow-reconfigure")
        if self.config_file:
            (folder / "custom.yaml").write_text(CUSTOM_CONFIG)
            args.append("--mig-config-file=custom.yaml")
        return args


# Every rule of deploy/rbac.yaml (RuleRef.describe()) -> its proof. A rule without one fails
# test_every_rule_has_a_proof: a new rule must come with the suite that needs it.
PROOFS: dict[str, Proof] = {
    # read-only runs: the catalog suite starts by listing the GPU nodes (before collection: a usage error)
    "ClusterRole mig-conformance-read: get,list,watch nodes":
        Proof("test_catalog.py", "test_node_gpu_is_in_catalog", "list nodes"),
    # read-only runs read the ClusterPolicy only for TARGET.yaml (best effort); reconfiguring runs need it
    "ClusterRole mig-conformance-read: list clusterpolicies.nvidia.com":
        Proof("test_reconfiguration.py", "test_label_change_is_followed", "list clusterpolicies.nvidia.com",
              reconfigure=True),
    # the projection (mig_expect) reads the cluster's mig-parted config
    "Role mig-conformance-read: get configmaps":
        Proof("test_reconfiguration.py", "test_label_change_is_followed", "get configmaps", reconfigure=True),
    "ClusterRole mig-conformance-reconfigure: patch nodes":
        Proof("test_reconfiguration.py", "test_unknown_config_fails", "patch nodes", reconfigure=True),
    "ClusterRole mig-conformance-reconfigure: patch clusterpolicies.nvidia.com":
        Proof("test_strategies.py", "test_single_strategy", "patch clusterpolicies.nvidia.com", reconfigure=True),
    "ClusterRole mig-conformance-reconfigure: create,delete namespaces":
        Proof("test_scheduling.py", "test_mig_slices_are_not_full_gpus", "create namespaces", reconfigure=True),
    "ClusterRole mig-conformance-reconfigure: create,get,list,delete pods":
        Proof("test_scheduling.py", "test_mig_slices_are_not_full_gpus", "create pods", reconfigure=True),
    # the newest stack (GPU Operator v26.3.0+): the custom suite creates ConfigMap mig-conformance-config first
    "Role mig-conformance-reconfigure: patch,create,delete configmaps":
        Proof("test_custom.py", "test_custom_config", "create configmaps", reconfigure=True, config_file=True),
    # the projection asks whether the node runs NVIDIA's DRA driver (its ResourceSlices)
    "ClusterRole mig-conformance-read: list resourceslices.resource.k8s.io,deviceclasses.resource.k8s.io":
        Proof("test_reconfiguration.py", "test_label_change_is_followed", "list resourceslices.resource.k8s.io",
              reconfigure=True),
    "ClusterRole mig-conformance-reconfigure: create,get,list resourceclaims.resource.k8s.io":
        Proof("test_dra.py", "test_every_mig_device_takes_a_claim_and_one_more_stays_pending",
              "create resourceclaims.resource.k8s.io", reconfigure=True, dra=True),
}
RULES = kit_rbac.rules()


# ---- the cluster, the kit's kubeconfig, RBAC that has taken effect -----------------------------------------------
@pytest.fixture(scope="module")
def local(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalCluster]:
    """Opened as `pytest --mig-cluster=local:p5.48xlarge` opens it (registry.open_cluster)."""
    cluster = open_cluster("local:p5.48xlarge", allow_changes=True, state_dir=tmp_path_factory.mktemp("local"),
                           mig_manager_delay=0.1)
    assert isinstance(cluster, LocalCluster)
    yield cluster
    cluster.close()


@pytest.fixture(scope="module")
def kubeconfig(local: LocalCluster, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return kit_kubeconfig(local, tmp_path_factory.mktemp("kube") / "config")


def _attributes(rule: kit_rbac.RuleRef) -> list[dict[str, Any]]:
    """SubjectAccessReview attributes of every verb x resource a rule grants (Roles: in the operator namespace)."""
    r = rule.rule
    if "nonResourceURLs" in r:
        return [{"nonResourceAttributes": {"path": p, "verb": v}} for p in r["nonResourceURLs"] for v in r["verbs"]]
    ns = OPERATOR_NAMESPACE if rule.kind == "Role" else ""
    return [{"resourceAttributes": {"group": g, "resource": res, "verb": v, "namespace": ns}}
            for g in r["apiGroups"] for res in r["resources"] for v in r["verbs"]]


def _allowed(admin: Any, attributes: dict[str, Any]) -> bool:
    review = {"apiVersion": "authorization.k8s.io/v1", "kind": "SubjectAccessReview",
              "spec": {"user": SA_USER, "groups": list(SA_GROUPS), **attributes}}
    return bool(admin.request("POST", "/apis/authorization.k8s.io/v1/subjectaccessreviews", review)["status"]
                .get("allowed"))


def _apply_and_wait(local: LocalCluster, without: kit_rbac.RuleRef | None = None) -> None:
    """Apply deploy/rbac.yaml (without one rule) and wait until the API server's authorizer shows exactly that: every
    verb of the dropped rule denied, every verb of the other rules allowed."""
    with local.admin() as admin:
        kit_rbac.apply(admin, kit_rbac.documents(without=without))
        want = {(i, j): rule != without for i, rule in enumerate(RULES) for j, _ in enumerate(_attributes(rule))}
        deadline = time.monotonic() + RBAC_WAIT_S
        while True:
            got = {(i, j): _allowed(admin, a) for i, rule in enumerate(RULES)
                   for j, a in enumerate(_attributes(rule))}
            if got == want:
                return
            assert time.monotonic() < deadline, \
                f"RBAC without {without.describe() if without else 'nothing'} did not take effect: " \
                f"{[RULES[i].describe() for (i, _), ok in got.items() if ok != want[i, _]]}"
            time.sleep(0.1)


@pytest.fixture
def full_rbac(local: LocalCluster) -> Iterator[None]:
    """deploy/rbac.yaml as shipped before and after the test (also when the test dropped a rule and failed)."""
    _apply_and_wait(local)
    yield
    _apply_and_wait(local)


# ---- the identity ---------------------------------------------------------------------------------------------------
def _bindings(admin: Any) -> list[dict[str, Any]]:
    """Every ClusterRoleBinding and RoleBinding (any namespace), with its kind (list items carry none)."""
    cluster = admin.list("ClusterRoleBinding")
    namespaced = admin.request("GET", "/apis/rbac.authorization.k8s.io/v1/rolebindings").get("items", [])
    return [{**b, "kind": "ClusterRoleBinding"} for b in cluster] + [{**b, "kind": "RoleBinding"} for b in namespaced]


def _bootstrap(obj: dict[str, Any]) -> bool:
    return (obj["metadata"].get("labels") or {}).get(BOOTSTRAP[0]) == BOOTSTRAP[1]


def _names_the_kit(subject: dict[str, Any]) -> bool:
    if subject.get("kind") == "ServiceAccount":
        return (subject.get("name"), subject.get("namespace")) == (kit_rbac.KIT_SA, kit_rbac.KIT_NAMESPACE)
    return subject.get("kind") in ("Group", "User") and subject.get("name") in (*SA_GROUPS, SA_USER)


def test_the_local_backend_runs_as_the_service_account_bound_to_exactly_deploy_rbac(local: LocalCluster,
                                                                                   full_rbac: None) -> None:
    cfg = local.api_client.configuration
    assert not cfg.cert_file and not cfg.key_file, "the kit must not use a client certificate"
    from kubernetes import client

    review = client.AuthenticationV1Api(local.api_client).create_self_subject_review(
        {"apiVersion": "authentication.k8s.io/v1", "kind": "SelfSubjectReview"})
    assert review.status.user_info.username == SA_USER
    assert set(review.status.user_info.groups) == set(SA_GROUPS)
    assert local.describe()["identity"] == f"ServiceAccount {kit_rbac.KIT_NAMESPACE}/{kit_rbac.KIT_SA}"

    shipped = {(d["kind"], d["metadata"]["name"], d["metadata"].get("namespace")): d for d in kit_rbac.documents()}
    with local.admin() as admin:
        bound = [b for b in _bindings(admin) if any(_names_the_kit(s) for s in b.get("subjects") or [])]
        defaults = [b for b in bound if _bootstrap(b)]
        bound = [b for b in bound if not _bootstrap(b)]
        assert {(b["kind"], b["metadata"]["name"], b["metadata"].get("namespace")) for b in bound} == \
            {k for k in shipped if k[0] in kit_rbac.BINDING_KINDS}, \
            "the kit's identity is bound to something else than deploy/rbac.yaml"
        for b in defaults:  # only the API server's defaults for groups: nothing names the kit itself
            assert all(s.get("kind") == "Group" for s in b["subjects"] if _names_the_kit(s)), b["metadata"]["name"]
            role = admin.get("ClusterRole", b["roleRef"]["name"])
            assert _bootstrap(role), f"{b['metadata']['name']} binds a role that is not a bootstrap default"
        for b in bound:
            ref = b["roleRef"]
            ns = b["metadata"].get("namespace") if ref["kind"] == "Role" else None
            live = admin.get(ref["kind"], ref["name"], ns)
            assert live["rules"] == shipped[ref["kind"], ref["name"], ns]["rules"], f"{ref} differs from the file"


def test_rules_do_not_overlap_so_each_one_can_be_taken_away() -> None:
    """No verb on a resource is granted twice: removing a rule denies all it grants."""
    grants = [(r.kind == "Role", str(a)) for r in RULES for a in _attributes(r)]
    assert len(grants) == len(set(grants))


def test_every_rule_has_a_proof() -> None:
    assert {r.describe() for r in RULES} == set(PROOFS), \
        "each rule of deploy/rbac.yaml needs the suite that exercises it in PROOFS (or it is superfluous)"
    for rule in RULES:
        verb, _, resource = PROOFS[rule.describe()].permission.partition(" ")
        granted = {f"{res}.{g}" if g else res for g in rule.rule.get("apiGroups", []) for res in
                   rule.rule.get("resources", [])} | set(rule.rule.get("nonResourceURLs", []))
        assert verb in rule.rule["verbs"] and resource in granted, f"{rule.describe()}: proof names {verb} {resource}"


# ---- sufficient ---------------------------------------------------------------------------------------------------
def test_every_shipped_suite_passes_with_deploy_rbac(local: LocalCluster, kubeconfig: Path, tmp_path: Path,
                                                     full_rbac: None) -> None:
    original = settled_labels(local)
    (tmp_path / "custom.yaml").write_text(CUSTOM_CONFIG)
    code, out = run_pytest(tmp_path, kubeconfig, "--mig-allow-reconfigure", "--mig-config-file=custom.yaml",
                           "--mig-timeout=30", str(suites_dir()), timeout=600)
    assert code == 0, out[-4000:]
    assert "access denied" not in out and "NOT RESTORED" not in out and "LEAK:" not in out
    assert "leak check: nothing of this run is left" in out
    passed = int(re.search(r"(\d+) passed", out).group(1))  # type: ignore[union-attr]
    assert passed >= 10 and " failed" not in out.splitlines()[-1], out[-2000:]
    assert_left_nothing(local, tmp_path, original)


def test_a_read_only_run_needs_only_the_read_roles(local: LocalCluster, kubeconfig: Path, tmp_path: Path,
                                                   full_rbac: None) -> None:
    original = settled_labels(local)
    with local.admin() as admin:  # the -reconfigure roles' bindings gone: only mig-conformance-read is bound
        for doc in kit_rbac.documents():
            if doc["kind"] in kit_rbac.BINDING_KINDS and doc["metadata"]["name"] == kit_rbac.RECONFIGURE:
                admin.delete(doc["kind"], doc["metadata"]["name"], doc["metadata"].get("namespace"))
        probe = {"resourceAttributes": {"group": "", "resource": "nodes", "verb": "patch", "namespace": ""}}
        deadline = time.monotonic() + RBAC_WAIT_S
        while _allowed(admin, probe):
            assert time.monotonic() < deadline, "the reconfigure binding did not go away"
            time.sleep(0.1)
    code, out = run_pytest(tmp_path, kubeconfig, str(suites_dir()), timeout=300)
    assert code == 0, out[-4000:]
    assert "mode: kubeconfig: read-only" in out and "access denied" not in out
    assert re.search(r"\d+ passed", out) and "run with --mig-allow-reconfigure to allow it" in out
    assert_left_nothing(local, tmp_path, original)


# ---- necessary ----------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("rule", RULES, ids=[r.describe().replace(" ", "_") for r in RULES])
def test_without_any_one_rule_a_named_suite_fails_naming_the_permission(local: LocalCluster, kubeconfig: Path,
                                                                       tmp_path: Path, full_rbac: None,
                                                                       rule: kit_rbac.RuleRef) -> None:
    proof = PROOFS[rule.describe()]
    if proof.dra:
        pytest.skip("exercised on DRA nodes only; this cluster runs the device plugin (see Proof.dra)")
    original = settled_labels(local)
    args = proof.args(tmp_path)
    try:
        _apply_and_wait(local, without=rule)
        code, out = run_pytest(tmp_path, kubeconfig, *args)
    finally:
        _apply_and_wait(local)
    needed = f"access denied: the kit needs permission to {proof.permission} (see deploy/rbac.yaml)"
    assert code != 0, f"the run passed without {rule.describe()}:\n{out[-3000:]}"
    assert needed in out, out[-4000:]
    assert "INTERNALERROR" not in out and "Traceback (most recent call last)" not in out, out[-4000:]
    if code == 4:  # refused before collection: the cluster cannot even be listed
        assert f"ERROR: mig-conformance: cluster kubeconfig:kit (kubeconfig): kubeconfig:kit: {needed}" in out
    else:
        assert code == 1
        assert re.search(rf"(FAILED|ERROR) \S*suites/{proof.suite}::{proof.test}", out), out[-3000:]
    # the permission denied did not leave the cluster changed (what the kit could not do, it did not do)
    assert_left_nothing(local, tmp_path, original)


def test_without_only_the_watch_verb_a_reconfiguration_says_so(local: LocalCluster, kubeconfig: Path,
                                                               tmp_path: Path, full_rbac: None) -> None:
    """One verb of a rule: the kit watches a node while mig-manager works; a missing `watch nodes` must be named,
    not turn into a blind wait."""
    docs = kit_rbac.documents()
    nodes_rule = next(r for d in docs if d["kind"] == "ClusterRole" and d["metadata"]["name"] == kit_rbac.READ
                      for r in d["rules"] if "nodes" in r.get("resources", []))
    nodes_rule["verbs"] = [v for v in nodes_rule["verbs"] if v != "watch"]
    watch = {"resourceAttributes": {"group": "", "resource": "nodes", "verb": "watch", "namespace": ""}}
    original = settled_labels(local)
    try:
        with local.admin() as admin:
            kit_rbac.apply(admin, docs)
            deadline = time.monotonic() + RBAC_WAIT_S
            while _allowed(admin, watch):
                assert time.monotonic() < deadline, "the RBAC change did not take effect"
                time.sleep(0.1)
        proof = Proof("test_reconfiguration.py", "test_label_change_is_followed", "watch nodes", reconfigure=True)
        code, out = run_pytest(tmp_path, kubeconfig, *proof.args(tmp_path))
    finally:
        _apply_and_wait(local)
    assert code == 1, out[-3000:]
    assert "access denied: the kit needs permission to watch nodes (see deploy/rbac.yaml)" in out, out[-4000:]
    assert "Traceback (most recent call last)" not in out
    assert_left_nothing(local, tmp_path, original)
