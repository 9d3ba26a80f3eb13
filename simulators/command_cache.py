"""Outcomes of deterministic simulator work, keyed on a node's NVML state, shared by the nodes of one fleet.

A mig-parted command (apply, assert) and the device plugin's read-back of MIG devices are pure functions of the
command's arguments and the node's NVML state (`NvmlSimulator.state_key()`). A fleet of identical nodes asks the
same questions in the same states, so the first node runs the command for real and the others replay what it did
(`NvmlSimulator.replay`) and get a copy of its result: per-node state stays separate and equal to what running the
command would give. Nodes with injected faults, and callers that want per-GPU outcomes, always run for real.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable
from typing import Any, TypeVar

T = TypeVar("T")


def _same(value: T) -> T:
    return value


class CommandCache:
    """A bounded LRU of (key -> value); `hits` and `misses` count look-ups. Thread-safe (the local agents reconcile
    nodes in parallel); two threads that miss the same key both run, and one result is kept."""

    def __init__(self, size: int = 4096) -> None:
        self.size = size
        self._entries: OrderedDict[Hashable, Any] = OrderedDict()
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0

    def get_or_run(self, key: Hashable, run: Callable[[], T], replay: Callable[[Any], None] | None = None,
                   record: Callable[[], Any] | None = None, copy: Callable[[T], T] = _same) -> T:
        """The cached value for `key` (after `replay(changes)` of what the first run changed), else `run()` with
        `record()` taken afterwards; a record of None means nothing to redo (no replay). `copy` makes the stored and
        the handed-out values independent of the caller's (the default shares them: for immutable values)."""
        with self._lock:
            entry = self._entries.get(key)
            if entry is not None:
                self.hits += 1
                self._entries.move_to_end(key)
            else:
                self.misses += 1
        if entry is not None:
            value, changes = entry
            if replay is not None and changes is not None:
                replay(changes)
            return copy(value)
        value = run()
        stored = (copy(value), record() if record is not None else None)
        with self._lock:
            self._entries[key] = stored
            if len(self._entries) > self.size:
                self._entries.popitem(last=False)
        return value
