"""What a kind of job is: one class declares all of it, and the registry finds it by name.

A kind says, in one place: its steps (name and title), its verb for messages, the
container states a request for it may start from and a failed one be retried from, the
permission an actor needs, how it runs, and what its undo does. The runner
(`containers.jobs.runner`) knows nothing about any particular kind.

Adding a kind: write a subclass in its own module and decorate it with `@register`;
import that module from `containers/jobs/__init__.py` (the one registration line).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar, TypeVar

from containers.models import StepState
from portal.errors import ErrorCode, InvalidState

if TYPE_CHECKING:
    from containers.models import Container, Job

    from .context import JobContext


class JobKindBase:
    """A kind of job. Subclasses set the class attributes and implement `run`."""

    name: ClassVar[str]
    verb: ClassVar[str]  # "Creating": the failure message reads "Creating web1 failed: ..."
    steps: ClassVar[tuple[tuple[str, str], ...]]
    # The container states a new request may start from (checked by its service) ...
    start_from: ClassVar[tuple[str, ...]] = ()
    # ... and those a failed job of this kind may be retried from (job_retry).
    retry_from: ClassVar[tuple[str, ...]] = ()
    # The container action (auth.selectors.CONTAINER_ACTIONS) an actor needs to ask for it.
    permission: ClassVar[str]

    def run(self, ctx: JobContext) -> dict[str, Any]:
        raise NotImplementedError

    # A retry (containers.services.job_retry) asks the kind at three points:
    def check_retry(self, job: Job, container: Container) -> None:
        """Before anything: refuse a retry this kind cannot make (raise a PortalError)."""

    def retrying(self, job: Job, container: Container) -> None:
        """In the retry's transaction, before the new job is queued (locks, quota)."""

    def retried(self, container: Container) -> None:
        """In the same transaction, once the new job is queued (status changes)."""

    def undo(self, ctx: JobContext) -> str:
        """After a failure: put right what the job left half-made; say what was done."""
        return ""

    def failed(self, job: Job, message: str) -> None:
        """Once the job is recorded failed with `message` (the user's words for it)."""

    @classmethod
    def plan(
        cls, params: dict[str, Any] | None = None, container: Container | None = None
    ) -> list[dict[str, Any]]:
        """The job's steps, pending. A kind whose steps depend on its params or its
        container (e.g. on whether the container's site has Wazuh) overrides it."""
        return pending(cls.steps)


def pending(steps: tuple[tuple[str, str], ...]) -> list[dict[str, Any]]:
    """Steps (name, title) as a job records them before they run."""
    return [{"name": name, "title": title, "state": StepState.PENDING} for name, title in steps]


_REGISTRY: dict[str, type[JobKindBase]] = {}
K = TypeVar("K", bound=type[JobKindBase])


def register(cls: K) -> K:
    if cls.name in _REGISTRY and _REGISTRY[cls.name] is not cls:
        raise ValueError(f"job kind {cls.name!r} is registered twice")
    _REGISTRY[cls.name] = cls
    return cls


def kind_of(name: str) -> JobKindBase:
    try:
        return _REGISTRY[name]()
    except KeyError:
        raise InvalidState(f"no job kind {name!r}", code=ErrorCode.INVALID_JOB_KIND) from None


def kinds() -> dict[str, type[JobKindBase]]:
    return dict(_REGISTRY)
