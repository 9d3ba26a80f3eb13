"""The `kubeconfig` backend: any context of an existing kubeconfig, opened with the official client.

The file is only read: the client is built with `persist_config=False` (so token refreshes of auth plugins are
never written back) and the current context is never changed.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from mig_conformance.cluster.base import ClusterError
from mig_conformance.cluster.journal import Journal
from mig_conformance.cluster.kube import KubeCluster
from mig_conformance.cluster.targets import check_backend_options
from mig_conformance.common.yaml_source import load_yaml_file


def default_kubeconfig(env: Mapping[str, str] | None = None) -> str:
    """$KUBECONFIG (possibly a list of files) or ~/.kube/config, read at call time."""
    env = os.environ if env is None else env
    return env.get("KUBECONFIG") or str(Path("~/.kube/config").expanduser())


def _existing(paths: str) -> list[str]:
    return [p for p in (os.path.expanduser(x) for x in paths.split(os.pathsep)) if p and os.path.isfile(p)]


def contexts(kubeconfig: str | None = None) -> tuple[list[str], str | None]:
    """(context names, current context) of a kubeconfig (a path or a path list)."""
    from kubernetes.config.kube_config import list_kube_config_contexts

    paths = kubeconfig or default_kubeconfig()
    existing = _existing(paths)
    if not existing:
        raise ClusterError(f"kubeconfig {paths}: no such file (set --kubeconfig, the clusters file's 'kubeconfig' "
                           "or $KUBECONFIG)")
    for path in existing:  # bounded first (alias bombs, deep nesting): the client's loader has no limits
        load_yaml_file(path)
    try:
        found, current = list_kube_config_contexts(paths)
    except Exception as exc:  # ConfigException, YAML errors: the file is not a kubeconfig
        raise ClusterError(f"kubeconfig {paths}: cannot read it: {exc}") from None
    return [c["name"] for c in found], (current or {}).get("name")


def new_api_client(context: str, kubeconfig: str | None = None) -> Any:
    """An ApiClient for `context` that never writes to the kubeconfig file nor changes the default client."""
    from kubernetes.config import new_client_from_config

    paths = kubeconfig or default_kubeconfig()
    names, _ = contexts(paths)
    if context not in names:
        raise ClusterError(f"kubeconfig {paths}: no context '{context}' (contexts there: {', '.join(names) or 'none'})")
    try:
        return new_client_from_config(config_file=paths, context=context, persist_config=False)
    except Exception as exc:
        raise ClusterError(f"kubeconfig {paths}, context {context}: cannot build a client: {exc}") from None


class KubeconfigCluster(KubeCluster):
    """A cluster reached through one context of an existing kubeconfig."""

    kind = "kubeconfig"

    @classmethod
    def open(cls, name: str, context: str, kubeconfig: str | None = None, *, allow_changes: bool = False,
             journal: Journal | None = None, config_map: str | None = None, operator_namespace: str | None = None,
             pod_image: str | None = None) -> KubeconfigCluster:
        """Connect to `context` of `kubeconfig` (default $KUBECONFIG, then ~/.kube/config)."""
        paths = kubeconfig or default_kubeconfig()
        api_client = new_api_client(context, paths)
        facts = {"context": context, "kubeconfig": paths, "server": api_client.configuration.host}
        if journal is not None and journal.target:
            # `mig-conformance restore` reopens the same file even if $KUBECONFIG differs then.
            journal.target.setdefault("options", {}).setdefault("kubeconfig", paths)
            journal.save()
        return cls(name, api_client, allow_changes=allow_changes, journal=journal,
                   operator_namespace=operator_namespace, config_map=config_map, pod_image=pod_image, facts=facts)


def open_kubeconfig(name: str, context: str, allow_changes: bool, options: Mapping[str, Any]) -> KubeconfigCluster:
    """Registry entry point: `kubeconfig:CONTEXT` or a clusters-file entry (context, kubeconfig, namespace...)."""
    check_backend_options("kubeconfig", options)
    context = options.get("context") or context
    if not context:
        raise ClusterError(f"target '{name}': the kubeconfig backend needs a context (kubeconfig:CONTEXT)")
    kubeconfig = options.get("kubeconfig")
    return KubeconfigCluster.open(name, context, str(Path(kubeconfig).expanduser()) if kubeconfig else None,
                                  allow_changes=allow_changes, journal=options.get("journal"),
                                  config_map=options.get("config_map"),
                                  operator_namespace=options.get("operator_namespace"),
                                  pod_image=options.get("pod_image"))
