"""Which process of a pytest-xdist run this is, decided one way everywhere (as pytest-xdist's own
`is_xdist_worker` / `is_xdist_controller` / `get_xdist_worker_id` do, without needing xdist installed).

* worker: runs tests (its config has `workerinput`); under xdist every test runs in one.
* controller: the process that started the workers (xdist's `dsession` plugin is active in it).
* main: the process that writes the report bundle — the controller, or the only process of a run without xdist.
"""

from __future__ import annotations

from typing import Any

import pytest


def is_worker(config: pytest.Config) -> bool:
    return hasattr(config, "workerinput")


def is_controller(config: pytest.Config) -> bool:
    return not is_worker(config) and config.pluginmanager.has_plugin("dsession")


def is_main(config: pytest.Config) -> bool:
    """Not a worker: the process that owns the run's results."""
    return not is_worker(config)


def worker_input(config: pytest.Config) -> dict[str, Any]:
    """What the controller handed this worker (empty outside a worker)."""
    return dict(getattr(config, "workerinput", None) or {})


def worker_output(config: pytest.Config) -> dict[str, Any]:
    """What this worker hands back to the controller (xdist's `workeroutput`; a worker's config only)."""
    output: dict[str, Any] = config.workeroutput  # type: ignore[attr-defined]  # set by xdist, which has no types
    return output


def worker_id(config: pytest.Config) -> str | None:
    """`gw0`, `gw1`, ... in a worker; None elsewhere."""
    return worker_input(config).get("workerid")
