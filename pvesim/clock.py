"""The simulator's clock: real time plus an offset, or frozen for tests."""

from __future__ import annotations

import threading
import time


class SimClock:
    """Task timing, uptime and ticket age all read this clock.

    In manual mode time stands still until :meth:`advance` moves it, so a
    test decides exactly when a task finishes.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._offset = 0.0
        self._frozen: float | None = None

    def now(self) -> float:
        with self._lock:
            base = self._frozen if self._frozen is not None else time.time()
            return base + self._offset

    @property
    def manual(self) -> bool:
        return self._frozen is not None

    def set_manual(self, manual: bool) -> None:
        with self._lock:
            if manual and self._frozen is None:
                self._frozen = time.time()
            elif not manual and self._frozen is not None:
                # Keep the simulated time continuous when unfreezing.
                self._offset += self._frozen - time.time()
                self._frozen = None

    def advance(self, seconds: float) -> None:
        with self._lock:
            self._offset += seconds
