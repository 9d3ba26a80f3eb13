"""A controller work queue: keys are deduplicated, one worker handles a key at a time, adds can be delayed.

Semantics as client-go's workqueue: a key added while it is being processed is processed again afterwards, never
by two workers at once; `add_after` fires when due. Workers block in `get()` until a key or a timer is ready.
"""

from __future__ import annotations

import heapq
import itertools
import threading
import time
from collections import deque
from collections.abc import Callable


class WorkQueue:
    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._cond = threading.Condition()
        self._queue: deque[str] = deque()
        self._dirty: set[str] = set()
        self._processing: set[str] = set()
        self._timers: list[tuple[float, int, str]] = []
        self._seq = itertools.count()
        self._closed = False

    def add(self, key: str) -> None:
        with self._cond:
            self._add(key)

    def _add(self, key: str) -> None:
        if self._closed or key in self._dirty:
            return
        self._dirty.add(key)
        if key not in self._processing:
            self._queue.append(key)
            self._cond.notify()

    def add_after(self, key: str, delay: float) -> None:
        if delay <= 0:
            self.add(key)
            return
        with self._cond:
            heapq.heappush(self._timers, (self._clock() + delay, next(self._seq), key))
            self._cond.notify()

    def _fire_timers(self) -> float | None:
        """Add the keys whose time has come; seconds until the next timer (None: no timer)."""
        now = self._clock()
        while self._timers and self._timers[0][0] <= now:
            self._add(heapq.heappop(self._timers)[2])
        return self._timers[0][0] - now if self._timers else None

    def get(self) -> str | None:
        """The next key to process (call `done(key)` afterwards), or None once the queue is shut down."""
        with self._cond:
            while True:
                wait = self._fire_timers()
                if self._closed:
                    return None
                if self._queue:
                    key = self._queue.popleft()
                    self._dirty.discard(key)
                    self._processing.add(key)
                    return key
                self._cond.wait(wait)

    def done(self, key: str) -> None:
        with self._cond:
            self._processing.discard(key)
            if key in self._dirty:
                self._queue.append(key)
            self._cond.notify_all()

    def idle(self) -> bool:
        """No key queued or being processed (timers may still be pending)."""
        with self._cond:
            return not self._queue and not self._processing

    def wait_idle(self, timeout: float) -> bool:
        deadline = self._clock() + timeout
        with self._cond:
            while self._queue or self._processing:
                left = deadline - self._clock()
                if left <= 0 or self._closed:
                    return False
                self._cond.wait(min(left, 0.1))
            return True

    def shut_down(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify_all()
