"""What the end-of-run cleanup reports: restored changes, what was not restored or not re-applied, leaks."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def cleanup_failed(cleanup: Mapping[str, Any]) -> bool:
    """The run left the cluster changed: something not restored, not re-applied, or leaked."""
    return bool(cleanup.get("restore_failures") or cleanup.get("leaks")
                or any(s["problem"] for s in cleanup.get("settled", {}).values()))


def cleanup_lines(cleanup: Mapping[str, Any]) -> list[str]:
    """Terminal lines for the end-of-run cleanup: what was restored, what was not, what leaked."""
    if not cleanup:
        return []
    lines = []
    if "restored" in cleanup:  # under xdist the workers restore; the controller reports what they left
        restored = cleanup["restored"]
        lines.append(f"restored {len(restored)} change(s)" + "".join(f"\n  {r}" for r in restored))
    for failure in cleanup.get("restore_failures", []):
        lines.append(f"NOT RESTORED: {failure}")
    if cleanup.get("restore_command"):
        lines.append(f"restore later with: {cleanup['restore_command']}")
    for node, settled in cleanup.get("settled", {}).items():
        if settled["problem"]:
            lines.append(f"NOT SETTLED: node {node}: mig-manager did not bring back the original config: "
                         f"{settled['state']}")
        else:
            lines.append(f"mig-manager re-applied node {node}: {settled['state']}")
    leaks = cleanup.get("leaks", [])
    lines += [leak if leak.startswith("leak check failed") else f"LEAK: {leak} is still present" for leak in leaks]
    if not leaks:
        lines.append("leak check: nothing of this run is left")
    return lines
