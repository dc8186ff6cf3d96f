"""The four resources of a container (cores, memory, swap, disk) as one value.

Create, resize, the quota checks, resource requests and the resize job all speak in
it; `replaced` fills what a caller left out from defaults (a template's, or the
container's current size), in one place.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any, ClassVar

if TYPE_CHECKING:
    from .models import Container, Template


@dataclass(frozen=True)
class Resources:
    cores: int
    memory_mib: int
    swap_mib: int
    disk_gib: int

    FIELDS: ClassVar[tuple[str, ...]] = ("cores", "memory_mib", "swap_mib", "disk_gib")

    @classmethod
    def of(cls, container: Container) -> Resources:
        """What the container has now."""
        return cls(container.cores, container.memory_mib, container.swap_mib, container.disk_gib)

    @classmethod
    def defaults(cls, template: Template) -> Resources:
        """What a new container of the template gets unless asked otherwise."""
        return cls(
            template.default_cores,
            template.default_memory_mib,
            template.default_swap_mib,
            template.default_disk_gib,
        )

    @classmethod
    def from_params(cls, params: Mapping[str, Any]) -> Resources:
        """From a job's params (or any mapping with the four fields)."""
        return cls(*(int(params[f]) for f in cls.FIELDS))

    def replaced(
        self,
        *,
        cores: int | None = None,
        memory_mib: int | None = None,
        swap_mib: int | None = None,
        disk_gib: int | None = None,
    ) -> Resources:
        """These resources with each given value that is not None instead."""
        return Resources(
            self.cores if cores is None else cores,
            self.memory_mib if memory_mib is None else memory_mib,
            self.swap_mib if swap_mib is None else swap_mib,
            self.disk_gib if disk_gib is None else disk_gib,
        )

    def as_params(self) -> dict[str, int]:
        return asdict(self)
