"""Field diagnostics: known MIG failure modes of a GPU Operator cluster, found in a read-only snapshot of its objects.

`snapshot.read_snapshot` gathers nodes, operator pods, DaemonSets, ConfigMaps, the ClusterPolicy, ResourceSlices and
events through one `ObjectSource` (every backend implements `list_objects`, with get/list only); `run.diagnose` turns
the snapshot into `Finding`s (node, evidence, the upstream issue it matches, the recovery step). Pure: no writes.
"""
