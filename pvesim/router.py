"""Route table and the per-request context handlers receive."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from pvesim.access import permissions
from pvesim.errors import perm_error
from pvesim.schema import Schema

if TYPE_CHECKING:
    from pvesim.state import SimState


@dataclass(frozen=True)
class Perm:
    """A declarative ``['perm', path, [privs], any => ...]`` check."""

    path: str
    privs: tuple[str, ...]
    any: bool = False


@dataclass
class Ctx:
    state: SimState
    authuser: str
    is_token: bool
    method: str
    path: str
    total: int | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def privs(self, path: str) -> set[str]:
        return permissions(self.state.access, self.authuser, path)

    def check(self, path: str, privs: tuple[str, ...] | list[str], noerr: bool = False) -> bool:
        """RPCEnvironment::check: every privilege is needed."""
        have = self.privs(path)
        for priv in privs:
            if priv not in have:
                if noerr:
                    return False
                raise perm_error(f"{path}, {priv}")
        return True

    def check_any(self, path: str, privs: tuple[str, ...] | list[str], noerr: bool = False) -> bool:
        have = self.privs(path)
        if any(p in have for p in privs):
            return True
        if noerr:
            return False
        raise perm_error(f"{path}, " + "|".join(privs))

    def check_perm_modify(self, path: str, noerr: bool = False) -> bool:
        privs = ["Permissions.Modify"]
        if re.match(r"^/storage/.+$", path):
            privs.append("Datastore.Allocate")
        elif re.match(r"^/vms/.+$", path):
            privs.append("VM.Allocate")
        elif re.match(r"^/pool/.+$", path):
            privs.append("Pool.Allocate")
        return self.check_any(path, privs, noerr)


Handler = Callable[[Ctx, dict[str, Any]], Any]
# A permission check that needs code (perm-modify, 'and' checks): runs on the
# raw parameters before validation, like check_api2_permissions.
PreCheck = Callable[[Ctx, dict[str, Any]], None]


@dataclass
class Route:
    method: str
    template: str
    handler: Handler
    params: Schema
    perm: Perm | None = None
    proxy: bool = False
    allowtoken: bool = True
    pre_check: PreCheck | None = None
    regex: re.Pattern[str] = field(init=False)

    def __post_init__(self) -> None:
        pattern = re.sub(r"\\\{(\w+)\\\}", r"(?P<\1>[^/]+)", re.escape(self.template))
        self.regex = re.compile(f"^{pattern}$")


ROUTES: list[Route] = []


def route(
    method: str,
    template: str,
    *,
    params: Schema,
    perm: Perm | None = None,
    proxy: bool = False,
    allowtoken: bool = True,
    pre_check: PreCheck | None = None,
) -> Callable[[Handler], Handler]:
    def deco(fn: Handler) -> Handler:
        ROUTES.append(Route(method, template, fn, params, perm, proxy, allowtoken, pre_check))
        return fn

    return deco


def find_route(method: str, path: str) -> tuple[Route | None, dict[str, str]]:
    norm = path.rstrip("/") or "/"
    norm = re.sub(r"/+", "/", norm)
    for r in ROUTES:
        if r.method != method:
            continue
        m = r.regex.match(norm)
        if m:
            return r, m.groupdict()
    return None, {}


def expand(template: str, params: dict[str, Any]) -> str:
    return re.sub(r"\{(\w+)\}", lambda m: str(params.get(m.group(1), "")), template)
