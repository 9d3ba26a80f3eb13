"""Kubeconfig files of a local control plane (certificates embedded, so a file stands on its own)."""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any

import yaml

from mig_conformance.common.private_files import write_private

CLUSTER = "mig-conformance-local"


def _b64(path: Path) -> str:
    return base64.b64encode(path.read_bytes()).decode()


def build(server: str, ca: Path, user: str, *, cert: Path | None = None, key: Path | None = None,
          token: str | None = None, namespace: str | None = None) -> dict[str, Any]:
    """A one-context kubeconfig for `user`: client certificate (cert+key) or bearer token."""
    creds: dict[str, str] = {}
    if cert is not None and key is not None:
        creds = {"client-certificate-data": _b64(cert), "client-key-data": _b64(key)}
    elif token is not None:
        creds = {"token": token}
    context: dict[str, str] = {"cluster": CLUSTER, "user": user}
    if namespace:
        context["namespace"] = namespace
    return {
        "apiVersion": "v1", "kind": "Config", "preferences": {},
        "clusters": [{"name": CLUSTER, "cluster": {"server": server, "certificate-authority-data": _b64(ca)}}],
        "users": [{"name": user, "user": creds}],
        "contexts": [{"name": f"{user}@{CLUSTER}", "context": context}],
        "current-context": f"{user}@{CLUSTER}",
    }


def write(path: Path, config: dict[str, Any]) -> Path:
    """Write a kubeconfig readable only by its owner (it holds credentials); atomic replace."""
    path.parent.mkdir(parents=True, exist_ok=True)
    return write_private(path, yaml.safe_dump(config, sort_keys=False))


def load(path: Path) -> dict[str, Any]:
    """The current context's server, CA data and credentials of a kubeconfig written by `build`."""
    data = yaml.safe_load(path.read_text()) or {}
    ctx_name = data.get("current-context")
    ctx = next((c["context"] for c in data.get("contexts", []) if c.get("name") == ctx_name), None)
    if ctx is None:
        raise ValueError(f"{path}: no current context")
    cluster = next(c["cluster"] for c in data.get("clusters", []) if c.get("name") == ctx["cluster"])
    user = next(u["user"] for u in data.get("users", []) if u.get("name") == ctx["user"])
    return {"server": cluster["server"], "ca_data": cluster.get("certificate-authority-data"), "user": user}
