"""Kubernetes manifests the kit ships (installed as `mig_conformance.deploy`): rbac.yaml is the kit's least-privilege
RBAC; `mig-conformance rbac` prints it bound to your group, user or ServiceAccount."""
