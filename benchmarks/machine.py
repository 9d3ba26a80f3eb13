"""The one-line description of the machine every benchmark prints first (numbers mean little without it)."""

from __future__ import annotations

import os
import platform
import time
from pathlib import Path


def cpu_model() -> str:
    """The CPU's model name from /proc/cpuinfo ('?' where there is none)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "?"


def memory_gib() -> float | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) / 2**20
    except OSError:
        pass
    return None


def describe() -> str:
    """Date, Python, CPUs and their model, memory and load average, e.g. for docs/performance.md."""
    memory = memory_gib()
    return (f"{time.strftime('%Y-%m-%d %H:%M %Z')}; python {platform.python_version()} on {platform.machine()}; "
            f"{os.cpu_count()} CPUs ({cpu_model()}); "
            f"{f'{memory:.0f} GiB' if memory else 'memory ?'}; load average {os.getloadavg()[0]:.2f}")
