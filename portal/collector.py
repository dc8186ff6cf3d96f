"""The cyclic garbage collector, paused around work that builds many objects at once."""

from __future__ import annotations

import contextlib
import gc
from collections.abc import Iterator


@contextlib.contextmanager
def gc_paused() -> Iterator[None]:
    """No cyclic garbage collection inside (reference counting still frees everything).

    Loading and rendering a large site, or a page of 1,000 containers, allocate hundreds
    of thousands of small objects (rows, entries, model instances); each burst made the
    collector walk the whole heap again: as long as the work itself for the gateway at
    10,000 containers, a tenth of a page of 1,000 (docs/performance.md). The collector
    resumes on the way out, as it was, and collects any cycles left then."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()
