"""A small JSON client for the API server, used to bootstrap a local control plane (no model classes, no
discovery: a handful of kinds with known paths). The kit itself talks through the official client."""

from __future__ import annotations

import http.client
import json
import ssl
import threading
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, cast
from urllib.parse import urlencode, urlsplit

Obj = dict[str, Any]

#: kind -> (API prefix, plural, namespaced)
ROUTES: dict[str, tuple[str, str, bool]] = {
    "Namespace": ("/api/v1", "namespaces", False),
    "Node": ("/api/v1", "nodes", False),
    "ServiceAccount": ("/api/v1", "serviceaccounts", True),
    "ConfigMap": ("/api/v1", "configmaps", True),
    "ClusterRole": ("/apis/rbac.authorization.k8s.io/v1", "clusterroles", False),
    "ClusterRoleBinding": ("/apis/rbac.authorization.k8s.io/v1", "clusterrolebindings", False),
    "Role": ("/apis/rbac.authorization.k8s.io/v1", "roles", True),
    "RoleBinding": ("/apis/rbac.authorization.k8s.io/v1", "rolebindings", True),
    "CustomResourceDefinition": ("/apis/apiextensions.k8s.io/v1", "customresourcedefinitions", False),
    "ClusterPolicy": ("/apis/nvidia.com/v1", "clusterpolicies", False),
    "DeviceClass": ("/apis/resource.k8s.io/v1", "deviceclasses", False),
    "ResourceSlice": ("/apis/resource.k8s.io/v1", "resourceslices", False),
    "ResourceClaim": ("/apis/resource.k8s.io/v1", "resourceclaims", True),
    "Pod": ("/api/v1", "pods", True),
}


class RestError(Exception):
    """A non-2xx answer: HTTP status, reason and the Status message."""

    def __init__(self, status: int, reason: str, message: str) -> None:
        super().__init__(f"{status} {reason}: {message}")
        self.status = status
        self.reason = reason
        self.message = message


def tls_context(ca: Path, cert: Path | None = None, key: Path | None = None) -> ssl.SSLContext:
    ctx = ssl.create_default_context(cafile=str(ca))
    if cert is not None and key is not None:
        ctx.load_cert_chain(str(cert), str(key))
    return ctx


def path_of(kind: str, name: str | None = None, namespace: str | None = None, sub: str | None = None) -> str:
    """The REST path of a kind's collection, or of one object (and its subresource)."""
    if kind not in ROUTES:
        raise ValueError(f"no REST route for kind {kind}")
    prefix, plural, namespaced = ROUTES[kind]
    path = prefix + (f"/namespaces/{namespace or 'default'}" if namespaced else "") + f"/{plural}"
    if name:
        path += f"/{name}"
    if sub:
        path += f"/{sub}"
    return path


class Rest:
    """JSON over HTTPS to one API server, one keep-alive connection per thread."""

    def __init__(self, server: str, ca: Path, *, cert: Path | None = None, key: Path | None = None,
                 token: str | None = None, timeout: float = 15.0) -> None:
        url = urlsplit(server)
        self.host, self.port = url.hostname or "127.0.0.1", url.port or 443
        self.ctx = tls_context(ca, cert, key)
        self.token = token
        self.timeout = timeout
        self._local = threading.local()

    def _conn(self) -> http.client.HTTPSConnection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = http.client.HTTPSConnection(self.host, self.port, context=self.ctx, timeout=self.timeout)
            self._local.conn = conn
        return conn

    def close(self) -> None:
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            conn.close()
            self._local.conn = None

    def request(self, method: str, path: str, body: Any = None, *, query: Mapping[str, Any] | None = None,
                content_type: str = "application/json") -> Any:
        """Send one request; the decoded JSON answer (text for non-JSON); RestError for non-2xx."""
        if query:
            path += "?" + urlencode(query)
        headers = {"Accept": "application/json"}
        data = None
        if body is not None:
            data = body if isinstance(body, bytes) else json.dumps(body).encode()
            headers["Content-Type"] = content_type
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        for attempt in (0, 1):
            conn = self._conn()
            try:
                conn.request(method, path, data, headers)
                resp = conn.getresponse()
                raw = resp.read()
                break
            except (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError, ssl.SSLError):
                self.close()  # a kept-alive connection the server closed (a restart): one fresh try
                if attempt:
                    raise
            except BaseException:
                self.close()  # never reuse a connection left in the middle of a request
                raise
        text = raw.decode(errors="replace")
        if resp.status >= 300:
            try:
                message = json.loads(text).get("message", text)
            except ValueError:
                message = text
            raise RestError(resp.status, resp.reason, message)
        if "json" in (resp.getheader("Content-Type") or ""):
            return json.loads(text)
        return text

    def __enter__(self) -> Rest:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ---- objects ----------------------------------------------------------------------------------
    def create(self, obj: Obj, exist_ok: bool = False) -> Obj | None:
        meta = obj.get("metadata", {})
        try:
            return cast(Obj, self.request("POST", path_of(obj["kind"], namespace=meta.get("namespace")), obj))
        except RestError as exc:
            if exist_ok and exc.status == 409:
                return None
            raise

    def create_all(self, objs: Iterable[Obj], exist_ok: bool = False) -> None:
        for obj in objs:
            self.create(obj, exist_ok)

    def get(self, kind: str, name: str, namespace: str | None = None) -> Obj:
        return cast(Obj, self.request("GET", path_of(kind, name, namespace)))

    def list(self, kind: str, namespace: str | None = None, **query: Any) -> list[Obj]:
        return cast(list[Obj], self.request("GET", path_of(kind, namespace=namespace), query=query).get("items", []))

    def delete(self, kind: str, name: str, namespace: str | None = None, missing_ok: bool = True) -> None:
        try:
            self.request("DELETE", path_of(kind, name, namespace))
        except RestError as exc:
            if not (missing_ok and exc.status == 404):
                raise

    def replace(self, obj: Obj) -> Obj:
        """Create, or overwrite an existing object of the same name."""
        meta = obj["metadata"]
        try:
            return cast(Obj, self.request("POST", path_of(obj["kind"], namespace=meta.get("namespace")), obj))
        except RestError as exc:
            if exc.status != 409:
                raise
        current = self.get(obj["kind"], meta["name"], meta.get("namespace"))
        body = {**obj, "metadata": {**meta, "resourceVersion": current["metadata"]["resourceVersion"]}}
        return cast(Obj, self.request("PUT", path_of(obj["kind"], meta["name"], meta.get("namespace")), body))

    def apply(self, obj: Obj, field_manager: str = "mig-conformance") -> Obj:
        """Server-side apply: creates the object or updates the fields this manager owns."""
        meta = obj["metadata"]
        path = path_of(obj["kind"], meta["name"], meta.get("namespace"))
        return cast(Obj, self.request("PATCH", path, obj, query={"fieldManager": field_manager, "force": "true"},
                                      content_type="application/apply-patch+yaml"))

    def token_for(self, namespace: str, service_account: str, seconds: int) -> str:
        """A bound service-account token from the TokenRequest API."""
        body = {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest",
                "spec": {"expirationSeconds": seconds}}
        path = path_of("ServiceAccount", service_account, namespace, "token")
        return cast(str, self.request("POST", path, body)["status"]["token"])
