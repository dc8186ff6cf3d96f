"""Jobs: asynchronous work on a container, one class per kind.

- `kind`: what a kind declares (steps, verb, states, permission, run, undo) and the registry;
- `context`: the JobContext a kind runs in (steps, log, leases, `run_task`);
- `runner`: claim, lease, flush, retry, undo; it knows no particular kind;
- `steps`: steps several kinds share; one module per kind (create, delete, power,
  resize, access, mend).

Adding a kind: a new module with a `@register`ed JobKindBase subclass, and its name in
the import line below.
"""

from __future__ import annotations

from . import access, create, delete, deploy, mend, power, resize  # noqa: F401 - each registers
from .context import JobContext, LeaseLost, RetryLater
from .kind import JobKindBase, kind_of, kinds, register
from .runner import backoff, claim, run, stale_jobs

__all__ = [
    "JobContext",
    "JobKindBase",
    "LeaseLost",
    "RetryLater",
    "backoff",
    "claim",
    "kind_of",
    "kinds",
    "register",
    "run",
    "stale_jobs",
]
