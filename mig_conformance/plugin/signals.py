"""Signals during a run: SIGTERM/SIGHUP end it like Ctrl-C (so the restore runs), and from the first interrupt until
the restore is done a second signal only prints a notice."""

from __future__ import annotations

import signal
import sys
import threading
from typing import Any

INTERRUPT_SIGNALS = tuple(getattr(signal, n) for n in ("SIGTERM", "SIGHUP") if hasattr(signal, n))


class DeferSignals:
    """From the first interrupt until the restore is done: one more SIGINT/SIGTERM/SIGHUP only prints a notice;
    a second one aborts (what was not restored stays in the journal for `mig-conformance restore`).
    Usable as a context manager; start() on a worker thread does nothing (signals reach the main thread only)."""

    def __init__(self) -> None:
        self._old: dict[int, Any] = {}
        self.received: list[int] = []

    def start(self) -> None:
        if self._old or threading.current_thread() is not threading.main_thread():
            return
        self._old = {sig: signal.signal(sig, self._handler) for sig in (signal.SIGINT, *INTERRUPT_SIGNALS)}

    def stop(self) -> None:
        for sig, old in self._old.items():
            signal.signal(sig, old)
        self._old = {}

    def _handler(self, signum: int, frame: Any) -> None:
        self.received.append(signum)
        if len(self.received) == 1:
            print("\nmig-conformance: restoring the cluster's original settings, please wait "
                  "(signal again to abort; then run `mig-conformance restore JOURNAL`)", file=sys.__stderr__,
                  flush=True)
            return
        raise KeyboardInterrupt(f"signal {signum} during restore")

    def __enter__(self) -> DeferSignals:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
