"""The few Kubernetes API calls the agents make, on raw JSON objects, with errors sorted for retrying.

`Api` is the interface the agents use (tests give them an in-memory one); `KubeApi` implements it with the official
client. Objects are plain dicts as the API server sends them (no model classes: cheaper for many nodes).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any, Protocol, cast

Obj = dict[str, Any]
CLUSTER_POLICY = ("nvidia.com", "v1", "clusterpolicies")
CONNECT_TIMEOUT = 5.0
REQUEST_TIMEOUT = 30.0


class ApiError(Exception):
    """The API server refused a request (status and message)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(f"{status}: {message}")
        self.status = status


class Unavailable(ApiError):
    """The API server cannot be reached or is overloaded/restarting: retry later."""


class NotFound(ApiError):
    pass


class AlreadyExists(ApiError):
    """409 on a create."""


class Gone(ApiError):
    """A watch's resourceVersion is too old (410): list again."""


class Api(Protocol):
    def list_nodes(self, selector: str | None) -> tuple[list[Obj], str]: ...

    def watch_nodes(self, selector: str | None, resource_version: str, timeout: int) -> Iterator[tuple[str, Obj]]: ...

    def list_policies(self) -> tuple[list[Obj], str]: ...

    def watch_policies(self, resource_version: str, timeout: int) -> Iterator[tuple[str, Obj]]: ...

    def read_config_map(self, namespace: str, name: str) -> Obj: ...

    def create_config_map(self, namespace: str, body: Obj) -> Obj: ...

    def replace_config_map(self, namespace: str, name: str, body: Obj) -> Obj: ...

    def patch_node(self, name: str, body: Obj) -> Obj: ...

    def patch_node_status(self, name: str, body: Obj) -> Obj: ...

    def list_resource_slices(self, field_selector: str) -> list[Obj]: ...

    def create_resource_slice(self, body: Obj) -> Obj: ...

    def replace_resource_slice(self, name: str, body: Obj) -> Obj: ...

    def delete_resource_slice(self, name: str) -> None: ...


def error_for(status: int, message: str) -> ApiError:
    """The ApiError subclass for an HTTP status (also one carried in a watch ERROR event)."""
    if status == 404:
        return NotFound(status, message)
    if status == 410:
        return Gone(status, message)
    if status == 409:
        return AlreadyExists(status, message)
    if status in (0, 429) or status >= 500:
        return Unavailable(status, message)
    return ApiError(status, message)


def translate(exc: BaseException) -> BaseException:
    """An ApiError subclass for a client or connection error; other exceptions unchanged."""
    from kubernetes.client.exceptions import ApiException
    from urllib3.exceptions import HTTPError

    if isinstance(exc, ApiException):
        return error_for(exc.status or 0, _message(exc))
    if isinstance(exc, HTTPError | OSError):
        return Unavailable(0, f"{type(exc).__name__}: {exc}")
    return exc


def _message(exc: Any) -> str:
    try:
        return json.loads(exc.body).get("message") or str(exc.reason)
    except Exception:
        return str(getattr(exc, "reason", exc))


class KubeApi:
    """`Api` over kubernetes.client (raw responses, strategic-merge patches)."""

    def __init__(self, kubeconfig: str, pool_size: int = 16) -> None:
        from kubernetes import client, config

        cfg = client.Configuration()
        config.load_kube_config(config_file=kubeconfig, client_configuration=cfg)
        cfg.connection_pool_maxsize = pool_size
        self.api_client = client.ApiClient(cfg)
        self.core = client.CoreV1Api(self.api_client)
        self.custom = client.CustomObjectsApi(self.api_client)
        self.resource = client.ResourceV1Api(self.api_client)

    def _json(self, fn: Any, *args: Any, **kwargs: Any) -> Obj:
        try:
            resp = fn(*args, _preload_content=False, _request_timeout=(CONNECT_TIMEOUT, REQUEST_TIMEOUT), **kwargs)
            return cast(Obj, json.loads(resp.data))
        except Exception as exc:
            raise translate(exc) from None

    def _watch(self, fn: Any, *args: Any, timeout: int, **kwargs: Any) -> Iterator[tuple[str, Obj]]:
        from kubernetes.watch.watch import iter_resp_lines

        try:
            resp = fn(*args, watch=True, allow_watch_bookmarks=True, timeout_seconds=timeout,
                      _preload_content=False, _request_timeout=(CONNECT_TIMEOUT, timeout + REQUEST_TIMEOUT), **kwargs)
        except Exception as exc:
            raise translate(exc) from None
        try:
            for line in iter_resp_lines(resp):
                if not line.strip():
                    continue
                event = json.loads(line)
                kind, obj = event.get("type", ""), event.get("object") or {}
                if kind == "ERROR":
                    status = int(obj.get("code") or 0)
                    raise error_for(status, obj.get("message") or obj.get("reason") or "watch error")
                yield kind, obj
        except ApiError:
            raise
        except Exception as exc:
            raise translate(exc) from None
        finally:
            resp.release_conn()

    def list_nodes(self, selector: str | None) -> tuple[list[Obj], str]:
        data = self._json(self.core.list_node, label_selector=selector)
        return data.get("items") or [], data["metadata"].get("resourceVersion", "")

    def watch_nodes(self, selector: str | None, resource_version: str, timeout: int) -> Iterator[tuple[str, Obj]]:
        return self._watch(self.core.list_node, label_selector=selector, resource_version=resource_version,
                           timeout=timeout)

    def list_policies(self) -> tuple[list[Obj], str]:
        data = self._json(self.custom.list_cluster_custom_object, *CLUSTER_POLICY)
        return data.get("items") or [], data["metadata"].get("resourceVersion", "")

    def watch_policies(self, resource_version: str, timeout: int) -> Iterator[tuple[str, Obj]]:
        return self._watch(self.custom.list_cluster_custom_object, *CLUSTER_POLICY,
                           resource_version=resource_version, timeout=timeout)

    def read_config_map(self, namespace: str, name: str) -> Obj:
        return self._json(self.core.read_namespaced_config_map, name, namespace)

    def create_config_map(self, namespace: str, body: Obj) -> Obj:
        return self._json(self.core.create_namespaced_config_map, namespace, body)

    def replace_config_map(self, namespace: str, name: str, body: Obj) -> Obj:
        return self._json(self.core.replace_namespaced_config_map, name, namespace, body)

    def patch_node(self, name: str, body: Obj) -> Obj:
        return self._json(self.core.patch_node, name, body)

    def patch_node_status(self, name: str, body: Obj) -> Obj:
        return self._json(self.core.patch_node_status, name, body)

    def list_resource_slices(self, field_selector: str) -> list[Obj]:
        return list(self._json(self.resource.list_resource_slice, field_selector=field_selector).get("items") or [])

    def create_resource_slice(self, body: Obj) -> Obj:
        return self._json(self.resource.create_resource_slice, body)

    def replace_resource_slice(self, name: str, body: Obj) -> Obj:
        return self._json(self.resource.replace_resource_slice, name, body)

    def delete_resource_slice(self, name: str) -> None:
        self._json(self.resource.delete_resource_slice, name)

    def close(self) -> None:
        self.api_client.close()
