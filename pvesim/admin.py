"""The fault/admin interface under ``/_sim/`` (JSON in and out, no auth).

It answers loopback clients only. :class:`pvesim.testing.SimAdmin` is its
Python client; README.md lists every call.
"""

from __future__ import annotations

import ipaddress
import json
import re
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

from pvesim import guestconf, metrics
from pvesim.faults import RequestFault, TaskFault
from pvesim.state import GIB, Guest

if TYPE_CHECKING:
    from pvesim.state import SimState

StartResponse = Callable[..., Any]


class AdminError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def _need(body: dict[str, Any], key: str) -> Any:
    if key not in body:
        raise AdminError(400, f"missing '{key}'")
    return body[key]


class AdminApi:
    def __init__(self, state: SimState) -> None:
        self.state = state
        self.routes: dict[tuple[str, str], Callable[[dict[str, Any]], Any]] = {
            ("GET", "/_sim/health"): lambda b: {"ok": True},
            ("GET", "/_sim/state"): lambda b: self.dump(),
            ("GET", "/_sim/guests"): lambda b: self.dump()["guests"],
            ("POST", "/_sim/guests"): self.create_guest,
            ("POST", "/_sim/guests/bulk"): self.create_guests,
            ("POST", "/_sim/guests/remove"): self.remove_guests,
            ("POST", "/_sim/guests/status"): self.set_guest_status,
            ("POST", "/_sim/guests/usage"): self.set_guest_usage,
            ("GET", "/_sim/requests/counts"): lambda b: dict(self.state.request_counts),
            ("POST", "/_sim/requests/counts/reset"): self.reset_request_counts,
            ("POST", "/_sim/faults/reset"): self.reset_faults,
            ("POST", "/_sim/nodes/offline"): self.node_offline,
            ("POST", "/_sim/quorum"): self.quorum,
            ("POST", "/_sim/tasks/fail"): self.fail_tasks,
            ("POST", "/_sim/tasks/warn"): self.warn_tasks,
            ("POST", "/_sim/tasks/seconds"): self.task_seconds,
            ("POST", "/_sim/requests/fail"): self.fail_requests,
            ("POST", "/_sim/requests/delay"): self.delay_requests,
            ("POST", "/_sim/locks/hold"): self.hold_lock,
            ("POST", "/_sim/locks/release"): self.release_lock,
            ("POST", "/_sim/locks/timeout"): self.lock_timeout,
            ("POST", "/_sim/latency"): self.latency,
            ("POST", "/_sim/auth-delay"): self.auth_delay,
            ("POST", "/_sim/tokens/revoke"): self.revoke_token,
            ("POST", "/_sim/restrict"): self.restrict,
            ("POST", "/_sim/clock"): self.clock,
            ("POST", "/_sim/directory"): self.directory,
            ("POST", "/_sim/storage"): self.storage,
            ("POST", "/_sim/pools"): self.pools,
            ("POST", "/_sim/templates/packages"): self.template_packages,
        }

    def handle(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        status, payload = 200, None
        try:
            remote = environ.get("REMOTE_ADDR", "")
            try:
                loopback = ipaddress.ip_address(remote).is_loopback
            except ValueError:
                loopback = False
            if not loopback:
                raise AdminError(403, "the admin interface answers loopback clients only")
            method = environ.get("REQUEST_METHOD", "GET").upper()
            path = environ.get("PATH_INFO", "").rstrip("/")
            handler = self.routes.get((method, path))
            if handler is None:
                raise AdminError(404, f"no admin call {method} {path}")
            length = int(environ.get("CONTENT_LENGTH") or 0)
            body = json.loads(environ["wsgi.input"].read(length) or b"{}") if length else {}
            if not isinstance(body, dict):
                raise AdminError(400, "expected a JSON object")
            with self.state.lock:
                payload = handler(body)
                self.state.save()
                self.state.cond.notify_all()
            # Tasks may be due now (after advance_clock or a task-seconds change).
            self.state.tick()
        except AdminError as exc:
            status, payload = exc.status, {"error": exc.message}
        except (ValueError, KeyError, TypeError) as exc:
            status, payload = 400, {"error": str(exc)}
        data = json.dumps({"data": payload}).encode()
        reasons = {200: "OK", 400: "Bad Request", 403: "Forbidden", 404: "Not Found"}
        start_response(
            f"{status} {reasons.get(status, 'Error')}",
            [("Content-Type", "application/json"), ("Content-Length", str(len(data)))],
        )
        return [data]

    # -- calls ---------------------------------------------------------------

    def dump(self) -> dict[str, Any]:
        st = self.state
        return {
            "now": st.now(),
            "manual_clock": st.clock.manual,
            "guests": [
                {
                    "vmid": g.vmid,
                    "node": g.node,
                    "type": g.type,
                    "status": g.status,
                    "conf": dict(g.conf),
                    "snapshots": sorted(g.snapshots),
                    "pool": g.pool,
                    "digest": guestconf.digest(g.conf, g.snapshots),
                }
                for g in sorted(st.guests.values(), key=lambda g: g.vmid)
            ],
            "tasks": [
                {k: v for k, v in t.to_json().items() if k != "log"}
                for t in sorted(st.tasks.values(), key=lambda t: (t.starttime, t.pid))
            ],
            "acl": [vars(a).copy() for a in st.access.acl],
            "users": sorted(st.access.users),
            "groups": {g: sorted(m) for g, m in st.access.groups.items()},
            "superusers": sorted(st.access.superusers),
            "flocks": {str(k): v for k, v in st.flocks.items()},
            "leases": dict(st.leases),
            "faults": st.faults.to_json(),
            "task_seconds": {"default": st.task_seconds_default, **st.task_seconds},
            "lock_timeout": st.lock_timeout,
            "storage": {
                n.name: {
                    s.id: {"total": s.total, "used": s.used(), "avail": s.avail()}
                    for s in n.storages.values()
                }
                for n in st.nodes.values()
            },
        }

    def create_guest(self, b: dict[str, Any]) -> dict[str, Any]:
        st = self.state
        node = str(_need(b, "node"))
        vmid = int(_need(b, "vmid"))
        kind = str(b.get("type", "lxc"))
        if kind not in ("lxc", "qemu"):
            raise AdminError(400, "type must be lxc or qemu")
        if node not in st.nodes:
            raise AdminError(400, f"unknown node {node}")
        if vmid in st.guests:
            raise AdminError(400, f"vmid {vmid} exists")
        memory = int(b.get("memory", 512))
        size = int(b.get("disk_gb", 8))
        sid = "local-lvm"
        volname = f"vm-{vmid}-disk-0"
        from pvesim.state import Volume

        st.nodes[node].storages[sid].volumes[volname] = Volume(
            size * GIB, vmid, "raw", "rootdir" if kind == "lxc" else "images", int(st.now())
        )
        name = str(b.get("name", f"{'CT' if kind == 'lxc' else 'VM'}{vmid}"))
        if kind == "lxc":
            conf: dict[str, Any] = {
                "arch": "amd64",
                "hostname": name,
                "memory": memory,
                "swap": 512,
                "ostype": "debian",
                "rootfs": f"{sid}:{volname},size={size}G",
                "net0": guestconf.normalize_net("name=eth0,bridge=vmbr0,ip=dhcp"),
                "unprivileged": 1,
            }
        else:
            conf = {
                "name": name,
                "memory": memory,
                "cores": 2,
                "scsi0": f"{sid}:{volname},size={size}G",
                "ostype": "l26",
            }
        if b.get("tags"):
            conf["tags"] = guestconf.normalize_tags(str(b["tags"]))
        guest = Guest(vmid=vmid, node=node, type=kind, conf=conf, created_at=st.now())
        if b.get("status") == "running":
            guest.status, guest.started_at, guest.pid = "running", st.now(), st.next_pid()
        st.guests[vmid] = guest
        return {"vmid": vmid, "node": node, "type": kind}

    def create_guests(self, b: dict[str, Any]) -> dict[str, Any]:
        """Many foreign guests in one call (benches, big clusters): {"guests": [{...}, ...]}."""
        specs = _need(b, "guests")
        if not isinstance(specs, list):
            raise AdminError(400, "guests must be a list")
        return {"created": [self.create_guest(dict(spec))["vmid"] for spec in specs]}

    def remove_guests(self, b: dict[str, Any]) -> dict[str, Any]:
        """Forget guests and their volumes at once, as if destroyed (tests clean up)."""
        gone = []
        for vmid in (int(v) for v in _need(b, "vmids")):
            guest = self.state.guests.pop(vmid, None)
            if guest is None:
                continue
            for node in self.state.nodes.values():
                for storage in node.storages.values():
                    for name in [n for n, v in storage.volumes.items() if v.vmid == vmid]:
                        del storage.volumes[name]
            gone.append(vmid)
        return {"removed": gone}

    def set_guest_usage(self, b: dict[str, Any]) -> dict[str, Any]:
        """Fix a running guest's figures from now on: `values` (gauges, and counters'
        values now) and `rates` (bytes/s by which counters move on); `clear` drops them."""
        guest = self.state.guests.get(int(_need(b, "vmid")))
        if guest is None:
            raise AdminError(404, "no such guest")
        if b.get("clear"):
            guest.usage = None
            return {"vmid": guest.vmid, "usage": None}
        values = {str(k): v for k, v in (b.get("values") or {}).items()}
        rates = {str(k): float(v) for k, v in (b.get("rates") or {}).items()}
        unknown = sorted(set(values) - set(metrics.SETTABLE)) + sorted(
            set(rates) - set(metrics.COUNTERS)
        )
        if unknown:
            raise AdminError(400, f"cannot set {', '.join(unknown)}")
        for key, value in values.items():
            if not isinstance(value, int | float) or value < 0:
                raise AdminError(400, f"{key} must be a number >= 0")
        guest.usage = {"at": self.state.now(), "values": values, "rates": rates}
        return {"vmid": guest.vmid, "usage": guest.usage}

    def reset_request_counts(self, b: dict[str, Any]) -> None:
        self.state.request_counts.clear()

    def set_guest_status(self, b: dict[str, Any]) -> dict[str, Any]:
        guest = self.state.guests.get(int(_need(b, "vmid")))
        if guest is None:
            raise AdminError(404, "no such guest")
        status = str(_need(b, "status"))
        if status not in ("running", "stopped"):
            raise AdminError(400, "status must be running or stopped")
        guest.status = status
        guest.started_at = self.state.now() if status == "running" else None
        guest.pid = self.state.next_pid() if status == "running" else None
        return {"vmid": guest.vmid, "status": status}

    def template_packages(self, b: dict[str, Any]) -> dict[str, Any]:
        """What a template (its file name) holds beyond the base system: the packages a CT
        made from it afterwards starts with (guest emulation); [] forgets them."""
        template = str(_need(b, "template")).rsplit("/", 1)[-1]
        packages = b.get("packages") or []
        if not isinstance(packages, list) or not all(
            isinstance(p, str) and re.fullmatch(r"[a-z0-9][a-z0-9+.-]*", p) for p in packages
        ):
            raise AdminError(400, "packages must be a list of package names")
        if packages:
            self.state.template_packages[template] = tuple(packages)
        else:
            self.state.template_packages.pop(template, None)
        return {"template": template, "packages": packages}

    def reset_faults(self, b: dict[str, Any]) -> None:
        st = self.state
        st.faults.reset()
        st.task_seconds.clear()
        st.task_seconds_default = None
        st.lock_timeout = st.config.lock_timeout
        for vmid, holder in list(st.flocks.items()):
            if holder == "admin":
                del st.flocks[vmid]
                guest = st.guests.get(vmid)
                if guest is not None:
                    guest.conf.pop("lock", None)

    def node_offline(self, b: dict[str, Any]) -> None:
        node = str(_need(b, "node"))
        if node not in self.state.nodes:
            raise AdminError(400, f"unknown node {node}")
        if b.get("offline", True):
            self.state.faults.offline[node] = str(b.get("reason") or "Connection refused")
        else:
            self.state.faults.offline.pop(node, None)

    def quorum(self, b: dict[str, Any]) -> None:
        self.state.faults.quorum = bool(_need(b, "ok"))

    def _task_fault(self, b: dict[str, Any], warning: bool) -> None:
        task_type = str(_need(b, "task_type"))
        count = int(b.get("count", 1))
        message = str(_need(b, "message"))
        self.state.faults.task_faults.setdefault(task_type, []).append(
            TaskFault(count, message, warning)
        )

    def fail_tasks(self, b: dict[str, Any]) -> None:
        self._task_fault(b, warning=False)

    def warn_tasks(self, b: dict[str, Any]) -> None:
        self._task_fault(b, warning=True)

    def task_seconds(self, b: dict[str, Any]) -> None:
        seconds = float(_need(b, "seconds"))
        task_type = b.get("task_type")
        if task_type is None:
            self.state.task_seconds_default = seconds
        else:
            self.state.task_seconds[str(task_type)] = seconds

    def fail_requests(self, b: dict[str, Any]) -> None:
        self.state.faults.request_faults.append(
            RequestFault(
                str(b.get("method", "*")).upper(),
                str(_need(b, "path_regex")),
                int(b.get("count", 1)),
                int(b.get("status", 595)),
                str(b.get("reason", "Connection refused")),
            )
        )

    def delay_requests(self, b: dict[str, Any]) -> None:
        seconds = float(_need(b, "seconds"))
        if not 0 < seconds <= 600:
            raise AdminError(400, "seconds must be in (0, 600]")
        self.state.faults.request_faults.append(
            RequestFault(
                str(b.get("method", "*")).upper(),
                str(_need(b, "path_regex")),
                int(b.get("count", 1)),
                0,
                "",
                delay=seconds,
            )
        )

    def hold_lock(self, b: dict[str, Any]) -> None:
        vmid = int(_need(b, "vmid"))
        guest = self.state.guests.get(vmid)
        if guest is None:
            raise AdminError(404, "no such guest")
        lock = b.get("lock", "backup")
        if lock:
            guest.conf["lock"] = str(lock)
        if b.get("flock", True):
            self.state.flocks[vmid] = "admin"

    def release_lock(self, b: dict[str, Any]) -> None:
        vmid = int(_need(b, "vmid"))
        if self.state.flocks.get(vmid) == "admin":
            del self.state.flocks[vmid]
        guest = self.state.guests.get(vmid)
        if guest is not None:
            guest.conf.pop("lock", None)

    def lock_timeout(self, b: dict[str, Any]) -> None:
        self.state.lock_timeout = float(_need(b, "seconds"))

    def latency(self, b: dict[str, Any]) -> None:
        self.state.faults.latency = float(_need(b, "seconds"))

    def auth_delay(self, b: dict[str, Any]) -> None:
        self.state.auth_delay = float(_need(b, "seconds"))

    def revoke_token(self, b: dict[str, Any]) -> None:
        from pvesim.access import split_tokenid

        tokenid = str(_need(b, "token_id"))
        parts = split_tokenid(tokenid)
        user = self.state.access.users.get(parts[0]) if parts else None
        if parts is None or user is None or parts[1] not in user.tokens:
            raise AdminError(404, f"no such token {tokenid}")
        user.tokens[parts[1]].revoked = True

    def restrict(self, b: dict[str, Any]) -> None:
        try:
            self.state.restrict(str(_need(b, "subject")), b.get("role"), str(b.get("path", "/")))
        except ValueError as exc:
            raise AdminError(404, str(exc)) from exc

    def clock(self, b: dict[str, Any]) -> dict[str, Any]:
        clock = self.state.clock
        if "manual" in b:
            clock.set_manual(bool(b["manual"]))
        if b.get("advance"):
            clock.advance(float(b["advance"]))
        return {"now": clock.now(), "manual": clock.manual}

    def directory(self, b: dict[str, Any]) -> None:
        realm = str(_need(b, "realm"))
        self.state.access.directory[realm] = {
            "users": [str(u) for u in b.get("users", [])],
            "groups": {str(k): [str(m) for m in v] for k, v in (b.get("groups") or {}).items()},
        }

    def storage(self, b: dict[str, Any]) -> None:
        node = self.state.nodes.get(str(_need(b, "node")))
        if node is None:
            raise AdminError(400, "unknown node")
        st = node.storages.get(str(b.get("storage", "local-lvm")))
        if st is None:
            raise AdminError(400, "unknown storage")
        st.total = int(_need(b, "size"))

    def pools(self, b: dict[str, Any]) -> None:
        self.state.pools.add(str(_need(b, "pool")))
