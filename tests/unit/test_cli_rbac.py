"""`mig-conformance rbac`: deploy/rbac.yaml bound to the subject given, ready for kubectl apply."""

from __future__ import annotations

import pytest
import yaml

from mig_conformance.cli import main
from mig_conformance.cluster.local import kit_rbac


def _docs(capsys: pytest.CaptureFixture[str], *args: str) -> list[dict]:
    assert main(["rbac", *args]) == 0
    return [d for d in yaml.safe_load_all(capsys.readouterr().out) if d]


def test_group_binding_with_every_rule_of_deploy_rbac(capsys: pytest.CaptureFixture[str]) -> None:
    docs = _docs(capsys, "--group", "mig-validators", "--operator-namespace", "nvidia-gpu-operator")
    assert {d["kind"] for d in docs} == {"ClusterRole", "Role", "ClusterRoleBinding", "RoleBinding"}
    bindings = [d for d in docs if d["kind"].endswith("Binding")]
    assert len(bindings) == 4 and all(b["subjects"] == [{"kind": "Group", "name": "mig-validators",
                                                          "apiGroup": "rbac.authorization.k8s.io"}] for b in bindings)
    namespaced = [d for d in docs if d["kind"] in ("Role", "RoleBinding")]
    assert namespaced and all(d["metadata"]["namespace"] == "nvidia-gpu-operator" for d in namespaced)
    assert [r.rule for r in kit_rbac.rules(docs)] == [r.rule for r in kit_rbac.rules()]  # nothing lost or added


def test_read_only_and_other_subjects(capsys: pytest.CaptureFixture[str]) -> None:
    docs = _docs(capsys, "--user", "alice", "--read-only")
    assert {d["metadata"]["name"] for d in docs} == {kit_rbac.READ}
    docs = _docs(capsys, "--service-account", "ci/validator")
    assert docs[-1]["subjects"] == [{"kind": "ServiceAccount", "name": "validator", "namespace": "ci"}]
    assert main(["rbac", "--service-account", "validator"]) == 2
    assert "expected NAMESPACE/NAME" in capsys.readouterr().err
