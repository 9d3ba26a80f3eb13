"""DRA: NVIDIA's DRA driver (`gpu.nvidia.com`) publishes the MIG devices the kit expects, and the scheduler allocates
claims for them as Kubernetes does. Runs on nodes whose pool the cluster publishes (ResourceSlices of
gpu.nvidia.com); skips elsewhere. The read-only checks always run; tests that create claims need a cluster the run
may change (sim, local, --mig-allow-reconfigure) and delete their pods, which releases the claims' devices."""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable
from dataclasses import replace
from typing import TYPE_CHECKING, Any

import pytest

from mig_conformance.k8s import dra
from mig_conformance.k8s import labels as L
from mig_conformance.k8s import stack as S
from mig_conformance.k8s.node_hardware import node_gpu_models
from mig_conformance.mig.reconfigure import SUCCESS

if TYPE_CHECKING:
    from mig_conformance.cluster.base import Cluster
    from mig_conformance.k8s.model import GpuNode
    from mig_conformance.k8s.projection import NodeProjection
    from mig_conformance.plugin.pods import PodFactory

pytestmark = pytest.mark.mig_category("dra")

RUNTIME = {"uuid", "parentUUID"}  # run-time values: compared for presence, not value
CANNOT_ALLOCATE = "cannot allocate all claims"


def _pool(cluster: Cluster, node: str) -> list[dict[str, Any]]:
    """The devices of the node's gpu.nvidia.com pool (every slice of its newest generation)."""
    slices = [s for s in cluster.list_resource_slices(dra.DRIVER) if s["spec"].get("nodeName") == node]
    newest = max((s["spec"]["pool"].get("generation", 0) for s in slices), default=0)
    return [d for s in slices if s["spec"]["pool"].get("generation", 0) == newest for d in s["spec"].get("devices")
            or []]


def _published(cluster: Cluster, node: GpuNode) -> list[dict[str, Any]]:
    devices = _pool(cluster, node.name)
    if not devices:
        pytest.skip(f"{node.name}: no ResourceSlice of {dra.DRIVER} (the node does not run NVIDIA's DRA driver)")
    return devices


def _profile(cluster: Cluster, node: GpuNode) -> S.StackProfile:
    """The versions to project with: the cluster's (sim: its own; else Kubernetes from /version and the driver
    from GFD's label), the newest GA releases where unknown."""
    own = getattr(getattr(cluster, "dra", None), "profile", None)
    if isinstance(own, S.StackProfile):
        return own
    base = S.default()
    version = str(cluster.describe().get("kubernetes_version") or "")
    if re.match(r"^v?\d+\.\d+", version):
        base = replace(base, kubernetes=S.Sourced(version, "API server /version"))
    driver = node.labels.get("nvidia.com/cuda.driver-version.full")
    return replace(base, driver=S.Sourced(driver, "GFD label")) if driver else base


def _expected(cluster: Cluster, node: GpuNode, mig_expect: Callable[..., NodeProjection]) -> dra.DraProjection:
    projection = mig_expect(node, node.labels.get(L.MIG_CONFIG))
    dynamic = any(d.get("consumesCounters") for d in _pool(cluster, node.name))
    return dra.project_states(node.name, projection.gpus, _profile(cluster, node), dynamic=dynamic)


def _key(device: dict[str, Any], attributes: set[str]) -> tuple[Any, ...]:
    attrs = device.get("attributes") or {}
    shown = tuple(sorted((k, tuple(sorted(v.items()))) for k, v in attrs.items()
                         if k in attributes and k not in RUNTIME))
    caps = tuple(sorted((k, dra.parse_quantity(v["value"])) for k, v in (device.get("capacity") or {}).items()
                        if not k.startswith("memorySlice")))
    return shown, caps


def _counts(devices: list[dict[str, Any]]) -> dict[str, int]:
    out: Counter[str] = Counter()
    for d in devices:
        attrs = d.get("attributes") or {}
        kind = (attrs.get("type") or {}).get("string")
        out[str((attrs.get("profile") or {}).get("string")) if kind == "mig" else str(kind)] += 1
    return dict(sorted(out.items()))


def _pictures(node: GpuNode, devices: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The published MIG devices on the report's GPU pictures: each at the memory slots its `memorySlice<i>`
    capacities name, on the GPU its name's minor gives (static MIG)."""
    models = node_gpu_models(node)
    pictures: dict[int, dict[str, Any]] = {}
    for d in devices:
        m = re.match(r"^gpu-(\d+)-mig-", d["name"])
        slots = sorted(int(k[len("memorySlice"):]) for k in d.get("capacity") or {} if k.startswith("memorySlice"))
        if not m or not slots or int(m.group(1)) >= len(models) or d.get("consumesCounters"):
            continue
        gpu, model = int(m.group(1)), models[int(m.group(1))]
        entry = pictures.setdefault(gpu, {"gpu": gpu, "model": model.key, "slots": model.memory_slots,
                                          "slices": model.compute_slices, "instances": []})
        profile = d["attributes"]["profile"]["string"]
        gi = model.resolve(profile)
        entry["instances"].append({"profile": profile, "start": slots[0], "size": len(slots),
                                   "slices": gi[0].slices if gi else 0})
    return [pictures[k] for k in sorted(pictures)]


def test_published_devices_equal_the_expected_ones(mig_node: GpuNode, mig_cluster: Cluster,
                                                   mig_expect: Callable[..., NodeProjection],
                                                   mig_record: Callable[..., None]) -> None:
    """Count per profile, attributes and capacities of every device; no parent GPU for a MIG-enabled GPU; each MIG
    device names its parent and its own UUID (read-only)."""
    node = mig_cluster.get_node(mig_node.name)
    devices = _published(mig_cluster, node)
    expected = _expected(mig_cluster, node, mig_expect)
    gpu = node_gpu_models(node)[0]
    mig_record(node=node.name, instance_type=node.instance_type, gpu_model=gpu.key,
               config=node.labels.get(L.MIG_CONFIG), expected={"devices": expected.counts()},
               measured={"devices": _counts(devices)}, layout=_pictures(node, devices))
    assert _counts(devices) == expected.counts(), f"{node.name}: devices per profile differ"
    names = {k for d in expected.devices for k in d.attributes}
    want = Counter(_key(d.api(), names) for d in expected.devices)
    got = Counter(_key(d, names) for d in devices)
    assert got == want, f"{node.name}: attributes or capacities differ: missing {list((want - got).elements())[:2]}, " \
                        f"unexpected {list((got - want).elements())[:2]}"
    migs = [d for d in devices if d["attributes"]["type"]["string"] == "mig"]
    # a partitionable device (dynamic MIG) is a partition not made yet: it names its parent, it has no UUID
    need = [{"parentUUID"} if d.get("consumesCounters") else {"uuid", "parentUUID"} for d in migs]
    assert all(n <= set(d["attributes"]) for n, d in zip(need, migs, strict=True)), \
        f"{node.name}: a MIG device without uuid or parentUUID"
    if not any(d.get("consumesCounters") for d in devices):
        parents = {d["attributes"]["parentUUID"]["string"] for d in migs}
        full = {d["attributes"]["uuid"]["string"] for d in devices if d["attributes"]["type"]["string"] == "gpu"}
        assert not parents & full, f"{node.name}: a MIG-enabled GPU is also advertised whole: {parents & full}"


def test_no_gpu_is_advertised_by_both(mig_node: GpuNode, mig_cluster: Cluster,
                                      mig_record: Callable[..., None]) -> None:
    """A node that publishes DRA devices registers no device-plugin resources (the silent oversubscription the EKS
    docs warn about) (read-only)."""
    node = mig_cluster.get_node(mig_node.name)
    devices = _published(mig_cluster, node)
    plugin = {k: v for k, v in node.allocatable.items() if (k == L.GPU_RESOURCE or k.startswith(L.MIG_RESOURCE_PREFIX))
              and v}
    mig_record(node=node.name, instance_type=node.instance_type, measured={"dra_devices": len(devices),
                                                                           "device_plugin": plugin})
    assert not plugin, f"{node.name}: GPUs advertised by both the DRA driver ({len(devices)} devices) and the " \
                       f"device plugin ({plugin})"


# ---- claims (the cluster changes: test pods and claims in the run's namespace) --------------------------------
def _claims_allowed(cluster: Cluster) -> None:
    if not cluster.allow_changes:
        pytest.skip("creating claims changes the cluster: needs --mig-allow-reconfigure (always allowed on sim and "
                    "local)")


def _mig_node(cluster: Cluster, node: GpuNode, reconfigure: Callable[..., GpuNode]) -> tuple[GpuNode, list[Any]]:
    """The node with MIG devices published: all-balanced applied where it has none (journaled, restored)."""
    devices = _published(cluster, node)
    if not any(d["attributes"]["type"]["string"] == "mig" and not d.get("consumesCounters") for d in devices):
        if not node_gpu_models(node)[0].mig_capable:
            pytest.skip(f"{node.name}: no MIG-capable GPU")
        if any(d.get("consumesCounters") for d in devices):
            pytest.skip(f"{node.name}: dynamic MIG (see test_dynamic_mig_never_overlaps)")
        node = reconfigure(node, "all-balanced")
        assert node.labels.get(L.MIG_CONFIG_STATE) == SUCCESS, f"{node.name}: all-balanced did not apply"
        devices = _published(cluster, node)
    return cluster.get_node(node.name), devices


def _claim(name: str, requests: list[tuple[str, str]], match: str | None = None, cls: str = dra.MIG_CLASS
           ) -> dict[str, Any]:
    devices: dict[str, Any] = {"requests": [
        {"name": rname, "exactly": {"deviceClassName": cls, "selectors": [
            {"cel": {"expression": dra.profile_selector(profile)}}]}} for rname, profile in requests]}
    if match:
        devices["constraints"] = [{"matchAttribute": match}]
    return {"kind": "ResourceClaim", "metadata": {"name": name}, "spec": {"devices": devices}}


def _claim_pod(cluster: Cluster, pods: PodFactory, node: str, claim: dict[str, Any]) -> Any:
    ns = pods.session.ensure_namespace()
    cluster.create_resource_claim(ns, claim)
    pod = pods.create({}, node=node, name=f"dra-{claim['metadata']['name']}", claims=(claim["metadata"]["name"],))
    return ns, pod


def _results(cluster: Cluster, ns: str, claim: str) -> list[dict[str, Any]]:
    status = cluster.get_resource_claim(ns, claim).get("status") or {}
    return list(((status.get("allocation") or {}).get("devices") or {}).get("results") or [])


@pytest.mark.mig_disruptive
def test_every_mig_device_takes_a_claim_and_one_more_stays_pending(
        mig_node: GpuNode, mig_cluster: Cluster, mig_reconfigure: Callable[..., GpuNode], mig_pods: PodFactory,
        mig_record: Callable[..., None]) -> None:
    """One claim per published MIG device, selected by its profile: all bound to distinct devices; one claim more
    for the most common profile stays Pending with the scheduler's reason."""
    _claims_allowed(mig_cluster)
    node, devices = _mig_node(mig_cluster, mig_node, mig_reconfigure)
    counts = {k: v for k, v in _counts(devices).items() if k != "gpu"}
    mig_record(node=node.name, instance_type=node.instance_type, gpu_model=node_gpu_models(node)[0].key,
               config=node.labels.get(L.MIG_CONFIG),
               expected={"bound": sum(counts.values()), "distinct_devices": sum(counts.values()),
                         "extra": "Pending"})
    made = []
    for profile, n in counts.items():
        for i in range(n):
            name = f"{re.sub(r'[^a-z0-9]', '-', profile)}-{i}"
            made.append((name, *_claim_pod(mig_cluster, mig_pods, node.name, _claim(name, [("gpu", profile)]))))
    most = max(counts, key=lambda p: counts[p])
    _, extra = _claim_pod(mig_cluster, mig_pods, node.name, _claim("one-more", [("gpu", most)]))
    for _, _, pod in made:
        mig_pods.wait_bound(pod)
    status = mig_pods.wait_unschedulable(extra)
    allocated = [r["device"] for name, ns_, _ in made for r in _results(mig_cluster, ns_, name)]
    mig_record(measured={"bound": len(made), "distinct_devices": len(set(allocated)), "extra": status.phase,
                         "message": status.message})
    assert len(set(allocated)) == len(allocated) == sum(counts.values()), f"{node.name}: claims share a device"
    assert not status.bound and CANNOT_ALLOCATE in (status.message or ""), \
        f"{node.name}: the extra {most} claim should stay Pending ({CANNOT_ALLOCATE}), got {status}"


@pytest.mark.mig_disruptive
def test_two_devices_from_one_gpu_through_match_attribute(
        mig_node: GpuNode, mig_cluster: Cluster, mig_reconfigure: Callable[..., GpuNode], mig_pods: PodFactory,
        mig_record: Callable[..., None]) -> None:
    """A claim for two MIG devices of different profiles with `matchAttribute: gpu.nvidia.com/parentUUID` gets
    both from one GPU."""
    _claims_allowed(mig_cluster)
    node, devices = _mig_node(mig_cluster, mig_node, mig_reconfigure)
    by_parent: dict[str, Counter[str]] = {}
    for d in devices:
        if d["attributes"]["type"]["string"] == "mig":
            by_parent.setdefault(d["attributes"]["parentUUID"]["string"], Counter())[
                d["attributes"]["profile"]["string"]] += 1
    pair = next((sorted(c)[:2] for c in by_parent.values() if len(c) >= 2), None)
    if pair is None:
        pair = next(([p, p] for c in by_parent.values() for p, n in c.items() if n >= 2), None)
    if pair is None:
        pytest.skip(f"{node.name}: no GPU holds two MIG devices")
    ns, pod = _claim_pod(mig_cluster, mig_pods, node.name, _claim("pair", [("a", pair[0]), ("b", pair[1])],
                                                                   f"{dra.DRIVER}/parentUUID"))
    mig_pods.wait_bound(pod)
    parent_of = {d["name"]: d["attributes"]["parentUUID"]["string"] for d in devices
                 if d["attributes"]["type"]["string"] == "mig"}
    results = _results(mig_cluster, ns, "pair")
    got = [r["device"] for r in results]
    profile_of = {d["name"]: d["attributes"]["profile"]["string"] for d in devices if "profile" in d["attributes"]}
    mig_record(node=node.name, instance_type=node.instance_type, expected={"profiles": sorted(pair), "parents": 1},
               measured={"profiles": sorted(profile_of.get(g, "?") for g in got), "devices": got,
                         "parents": len({parent_of.get(g) for g in got})})
    assert len(got) == 2 and len({parent_of.get(g) for g in got}) == 1, f"{node.name}: {got} are not on one GPU"


@pytest.mark.mig_disruptive
def test_extended_resource_bridge(mig_node: GpuNode, mig_cluster: Cluster, mig_reconfigure: Callable[..., GpuNode],
                                  mig_pods: PodFactory, mig_record: Callable[..., None]) -> None:
    """Where a DeviceClass bridges `nvidia.com/mig-<profile>` (Kubernetes >= 1.35), a pod that asks for it the
    device-plugin way is bound and the scheduler makes it a claim for one such device."""
    _claims_allowed(mig_cluster)
    node, devices = _mig_node(mig_cluster, mig_node, mig_reconfigure)
    bridges = {c["spec"]["extendedResourceName"]: c["metadata"]["name"] for c in mig_cluster.list_device_classes()
               if (c.get("spec") or {}).get("extendedResourceName")}
    profile = next((p for p in _counts(devices) if dra.extended_resource(p) in bridges), None)
    if profile is None:
        pytest.skip(f"{node.name}: no DeviceClass with extendedResourceName for its MIG profiles (Kubernetes < "
                    f"{dra.rule('dra.extended-resource-bridge').since} or classes not installed)")
    resource = dra.extended_resource(profile)
    pod = mig_pods.create({resource: 1}, node=node.name, name="dra-bridge")
    status = mig_pods.wait_bound(pod)
    ns = mig_pods.session.namespace
    claims = [c for c in mig_cluster.list_resource_claims(ns)
              if (c["metadata"].get("annotations") or {}).get(dra.EXTENDED_RESOURCE_CLAIM) == "true"]
    mig_record(node=node.name, instance_type=node.instance_type, expected={"resource": resource, "bound": True},
               measured={"resource": resource, "bound": status.bound, "claims": len(claims)})
    assert claims, f"{node.name}: pod bound with {resource} but no claim annotated {dra.EXTENDED_RESOURCE_CLAIM}"


@pytest.mark.mig_disruptive
def test_dynamic_mig_never_allocates_overlapping_placements(
        mig_node: GpuNode, mig_cluster: Cluster, mig_pods: PodFactory, mig_record: Callable[..., None]) -> None:
    """Dynamic MIG: claims for the smallest profile until one stays Pending; the allocated partitions of each GPU
    never share a memory slice."""
    _claims_allowed(mig_cluster)
    devices = _published(mig_cluster, mig_node)
    if not any(d.get("consumesCounters") for d in devices):
        pytest.skip(f"{mig_node.name}: not dynamic MIG (no partitionable devices)")
    by_name = {d["name"]: d for d in devices}
    migs = [d for d in devices if d["attributes"]["type"]["string"] == "mig"]
    smallest = min(migs, key=lambda d: dra.parse_quantity(d["capacity"]["memory"]["value"]))
    profile = smallest["attributes"]["profile"]["string"]
    bound: list[str] = []
    for i in range(len(migs) + 1):
        ns, pod = _claim_pod(mig_cluster, mig_pods, mig_node.name, _claim(f"dyn-{i}", [("gpu", profile)]))
        status = mig_pods.wait_unschedulable(pod) if i else mig_pods.wait_bound(pod)
        if not status.bound:
            break
        bound.extend(r["device"] for r in _results(mig_cluster, ns, f"dyn-{i}"))
    used: Counter[tuple[str, str]] = Counter()
    for name in bound:
        for use in by_name[name].get("consumesCounters") or []:
            for counter in use["counters"]:
                if counter.startswith("memory-slice-"):
                    used[(use["counterSet"], counter)] += 1
    mig_record(node=mig_node.name, instance_type=mig_node.instance_type, measured={"allocated": len(bound)})
    assert bound and all(n == 1 for n in used.values()), f"{mig_node.name}: overlapping placements allocated: " \
                                                         f"{[k for k, n in used.items() if n > 1]}"
