"""MIG mode of a GPU: current and pending, as NVML reports them."""

from __future__ import annotations

import enum
from dataclasses import dataclass


class MigMode(enum.IntEnum):
    DISABLED = 0
    ENABLED = 1

    def __str__(self) -> str:
        return "Enabled" if self else "Disabled"


@dataclass(frozen=True)
class ModeState:
    current: MigMode
    pending: MigMode

    @property
    def reset_required(self) -> bool:
        return self.current != self.pending
