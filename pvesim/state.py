"""The simulated cluster: nodes, storages, guests, tasks, access control.

One re-entrant lock guards everything; request handlers and the task
scheduler run under it, and give it up only while they wait (for a config
flock, latency, the 401 delay). The state is saved atomically to
``STATE_DIR/state.json``.
"""

from __future__ import annotations

import json
import logging
import os
import random
import threading
import time
import traceback
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pvesim import catalog
from pvesim.access import AccessData, Realm, TicketAuthority, Token, User
from pvesim.clock import SimClock
from pvesim.config import SimConfig
from pvesim.dhcp import DhcpEmulator
from pvesim.errors import ApiError, TaskFailure, die
from pvesim.faults import Faults
from pvesim.tasks import Task, WorkerBody, WorkerContext, make_upid

if TYPE_CHECKING:
    from pvesim.guests.manager import GuestEmulator

log = logging.getLogger("pvesim")

MIB = 1 << 20
GIB = 1 << 30
# Finished tasks kept per node (PVE rotates its task index too).
MAX_TASKS_PER_NODE = 500
SAVE_INTERVAL = 0.5  # seconds between writes of the state file while it changes
STATE_VERSION = 1


@dataclass
class Volume:
    size: int
    vmid: int | None
    format: str
    content: str
    ctime: int


@dataclass
class Storage:
    id: str
    type: str
    content: tuple[str, ...]
    total: int
    base_used: int
    shared: int = 0
    volumes: dict[str, Volume] = field(default_factory=dict)

    def used(self) -> int:
        return self.base_used + sum(v.size for v in self.volumes.values())

    def avail(self) -> int:
        return max(0, self.total - self.used())


@dataclass
class Node:
    name: str
    nodeid: int
    cpus: int
    memory: int
    boot_time: float
    storages: dict[str, Storage] = field(default_factory=dict)


@dataclass
class Guest:
    vmid: int
    node: str
    type: str = "lxc"
    conf: dict[str, Any] = field(default_factory=dict)
    snapshots: dict[str, dict[str, Any]] = field(default_factory=dict)
    status: str = "stopped"
    started_at: float | None = None
    pid: int | None = None
    created_at: float = 0.0
    pool: str | None = None
    # The create call's ssh-public-keys: not in the config (Proxmox writes them into the
    # CT's /root/.ssh/authorized_keys); guest emulation seeds the CT's directory with them.
    ssh_keys: str | None = None
    # The packages its template holds beyond the base system (/_sim/templates/packages):
    # guest emulation installs them, as the apt stand-in does, at the CT's first start.
    packages: tuple[str, ...] = ()
    # Usage figures a test set (/_sim/guests/usage): {"at", "values", "rates"}; see metrics.
    usage: dict[str, Any] | None = None

    @property
    def conf_path(self) -> str:
        kind = "lxc" if self.type == "lxc" else "qemu-server"
        return f"nodes/{self.node}/{kind}/{self.vmid}.conf"


@dataclass
class _Running:
    gen: Any
    ctx: WorkerContext
    wake_at: float
    started: bool = False


class SimState:
    def __init__(self, config: SimConfig, clock: SimClock | None = None) -> None:
        self.config = config
        self.clock = clock or SimClock()
        self.lock = threading.RLock()
        self.cond = threading.Condition(self.lock)
        self.faults = Faults()
        # API calls answered since the last reset, by "METHOD /path" (/_sim/requests/counts).
        self.request_counts: Counter[str] = Counter()
        self.state_dir = Path(config.state_dir)
        self.state_dir.mkdir(parents=True, exist_ok=True)
        self.path = self.state_dir / "state.json"
        self.tickets = TicketAuthority(self.state_dir)
        self.nodes: dict[str, Node] = {}
        self.guests: dict[int, Guest] = {}
        self.tasks: dict[str, Task] = {}
        self.access = AccessData()
        self.pools: set[str] = set()
        self.leases: dict[str, str] = {}
        self.flocks: dict[int, str] = {}
        self.workers: dict[str, _Running] = {}
        self.task_seconds: dict[str, float] = {}
        self.task_seconds_default: float | None = None
        # What a template holds beyond the base system, by its file name (a test's
        # arrangement: an image built with an agent in it); a new CT starts with them.
        self.template_packages: dict[str, tuple[str, ...]] = {}
        self.lock_timeout = config.lock_timeout
        self.auth_delay = config.auth_delay
        self._pid = random.randint(100_000, 900_000)
        self._dirty = False
        self._saved_at = 0.0
        self.dhcp = DhcpEmulator(config.dhcp_hosts, config.bridges)
        # Guest emulation (--guest-emulation): told of every change, asked by the power
        # workers to stop a CT's processes.
        self.guest_emulator: GuestEmulator | None = None
        self.on_change: Callable[[], None] | None = None
        with self.lock:
            self._load()
            self._apply_config()
            self.save()

    # -- setup and persistence ---------------------------------------------

    def _new_node(self, name: str, index: int) -> Node:
        cfg = self.config
        now = self.clock.now()
        node = Node(name, index + 1, cfg.node_cpus, cfg.node_memory, now - 86400 * (3 + index))
        local_total = max(cfg.node_storage // 4, 8 * GIB)
        node.storages["local"] = Storage(
            "local", "dir", ("backup", "iso", "vztmpl"), local_total, local_total // 10
        )
        node.storages["local-lvm"] = Storage(
            "local-lvm", "lvmthin", ("images", "rootdir"), cfg.node_storage, 0
        )
        for template in catalog.preloaded():
            node.storages["local"].volumes[f"vztmpl/{template}"] = Volume(
                catalog.template_size(template),
                None,
                catalog.template_format(template),
                "vztmpl",
                int(now) - 86400,
            )
        return node

    def _apply_config(self) -> None:
        cfg = self.config
        for i, name in enumerate(cfg.nodes):
            if name not in self.nodes:
                self.nodes[name] = self._new_node(name, i)
            node = self.nodes[name]
            node.cpus, node.memory = cfg.node_cpus, cfg.node_memory
            node.storages["local-lvm"].total = cfg.node_storage
        acc = self.access
        defaults = [
            Realm("pam", "pam", "Linux PAM standard authentication"),
            Realm("pve", "pve", "Proxmox VE authentication server"),
            Realm("ldap", "ldap", "LDAP directory"),
        ]
        for realm in defaults:
            acc.realms.setdefault(realm.realm, realm)
        for spec in cfg.realms:
            acc.realms[spec.realm] = Realm(spec.realm, spec.type, spec.comment)
        acc.users.setdefault("root@pam", User("root@pam", firstname="", comment=""))
        for user_spec in cfg.users:
            user = acc.users.setdefault(user_spec.userid, User(user_spec.userid))
            user.password = user_spec.password
            if user_spec.role:
                self._restrict(user_spec.userid, user_spec.role, "/")
            elif not self._has_acl(user_spec.userid):
                acc.superusers.add(user_spec.userid)
        for tok in cfg.tokens:
            owner, name = tok.tokenid.split("!", 1)
            user = acc.users.setdefault(owner, User(owner))
            existing = user.tokens.get(name)
            if existing is None:
                user.tokens[name] = Token(secret=tok.secret)
            else:
                existing.secret = tok.secret
            if tok.role:
                acc.superusers.add(owner)
                self._restrict(tok.tokenid, tok.role, "/")
            elif not self._has_acl(tok.tokenid):
                acc.superusers.add(tok.tokenid)

    def _has_acl(self, subject: str) -> bool:
        return any(a.ugid == subject for a in self.access.acl)

    def _restrict(self, subject: str, role: str | None, path: str) -> None:
        from pvesim.access import AclEntry, split_tokenid

        self.access.superusers.discard(subject)
        parts = split_tokenid(subject)
        if parts:
            token = self.access.users[parts[0]].tokens[parts[1]]
            token.privsep = 1
            # A restricted token belongs to an admin user: privsep intersects
            # the two, so the token's own ACL is what limits it.
            self.access.superusers.add(parts[0])
        if role:
            kind = "token" if parts else "user"
            self.access.acl = [
                a for a in self.access.acl if not (a.ugid == subject and a.path == path)
            ]
            self.access.acl.append(AclEntry(path, kind, subject, role, 1))

    def restrict(self, subject: str, role: str | None, path: str = "/") -> None:
        """Admin: stop treating a user/token as superuser, optionally grant a role."""
        from pvesim.access import split_tokenid

        parts = split_tokenid(subject)
        known = (
            parts is not None
            and parts[0] in self.access.users
            and parts[1] in self.access.users[parts[0]].tokens
        ) or subject in self.access.users
        if not known:
            raise ValueError(f"unknown user or token {subject!r}")
        self._restrict(subject, role, path)
        self.mark_dirty()

    def _load(self) -> None:
        if not self.path.exists():
            return
        data = json.loads(self.path.read_text())
        now = self.clock.now()
        for name, n in data.get("nodes", {}).items():
            storages = {
                sid: Storage(
                    sid,
                    s["type"],
                    tuple(s["content"]),
                    s["total"],
                    s["base_used"],
                    s.get("shared", 0),
                    {vn: Volume(**v) for vn, v in s["volumes"].items()},
                )
                for sid, s in n["storages"].items()
            }
            self.nodes[name] = Node(
                name, n["nodeid"], n["cpus"], n["memory"], n["boot_time"], storages
            )
        for g in data.get("guests", []):
            guest = Guest(**g)
            self.guests[guest.vmid] = guest
        for t in data.get("tasks", []):
            task = Task.from_json(t)
            if task.status == "running":
                # The worker died with the old process, as a killed PVE worker would.
                task.status = "stopped"
                task.exitstatus = "unexpected status"
                task.endtime = int(now)
            self.tasks[task.upid] = task
        self.access = AccessData.from_json(data.get("access", {}))
        self.pools = set(data.get("pools", []))
        self.leases = dict(data.get("leases", {}))
        self._pid = data.get("pid", self._pid)

    def to_json(self) -> dict[str, Any]:
        return {
            "version": STATE_VERSION,
            "nodes": {
                n.name: {
                    "nodeid": n.nodeid,
                    "cpus": n.cpus,
                    "memory": n.memory,
                    "boot_time": n.boot_time,
                    "storages": {
                        s.id: {
                            "type": s.type,
                            "content": list(s.content),
                            "total": s.total,
                            "base_used": s.base_used,
                            "shared": s.shared,
                            "volumes": {vn: vars(v).copy() for vn, v in s.volumes.items()},
                        }
                        for s in n.storages.values()
                    },
                }
                for n in self.nodes.values()
            },
            "guests": [vars(g).copy() for g in sorted(self.guests.values(), key=lambda g: g.vmid)],
            "tasks": [t.to_json() for t in self.tasks.values()],
            "access": self.access.to_json(),
            "pools": sorted(self.pools),
            "leases": self.leases,
            "pid": self._pid,
        }

    def mark_dirty(self) -> None:
        self._dirty = True
        if self.on_change is not None:
            self.on_change()

    def flush(self) -> None:
        with self.lock:
            if self._dirty:
                self.save()

    def flush_due(self) -> None:
        """Save if something changed and the last save is SAVE_INTERVAL old.

        Writing the whole state after every change cost more than the request itself
        once a cluster held a hundred guests, and it held the lock meanwhile; a stop
        (SIGTERM included) still saves at once, so only a SIGKILL can lose the last
        fraction of a second.
        """
        if self._dirty and time.monotonic() - self._saved_at >= SAVE_INTERVAL:
            self.flush()

    def save(self) -> None:
        with self.lock:
            text = json.dumps(self.to_json(), separators=(",", ":"), sort_keys=True)
            tmp = self.path.with_name(f".state.json.{os.getpid()}.{threading.get_ident()}.tmp")
            # 0600: it holds token secrets and passwords, and with guest emulation the
            # CTs' user may walk through the state directory.
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "w") as fh:
                fh.write(text)
            os.replace(tmp, self.path)
            self._dirty = False
            self._saved_at = time.monotonic()

    # -- lookups and common checks -----------------------------------------

    def now(self) -> float:
        return self.clock.now()

    def node(self, name: str) -> Node:
        node = self.nodes.get(name)
        if node is None:
            raise die(
                f"hostname lookup '{name}' failed - failed to get address info for: {name}: "
                "Name or service not known"
            )
        return node

    def load_config(self, node: str, vmid: int, kind: str = "lxc") -> Guest:
        guest = self.guests.get(vmid)
        if guest is None or guest.node != node or guest.type != kind:
            sub = "lxc" if kind == "lxc" else "qemu-server"
            raise die(f"Configuration file 'nodes/{node}/{sub}/{vmid}.conf' does not exist")
        return guest

    def check_vmid_unused(self, vmid: int) -> None:
        guest = self.guests.get(vmid)
        if guest is not None:
            kind = "VM" if guest.type == "qemu" else "CT"
            raise die(f"{kind} {vmid} already exists on node '{guest.node}'")

    def check_quorum(self) -> None:
        if not self.faults.quorum:
            raise die("cluster not ready - no quorum?")

    def next_pid(self) -> int:
        self._pid += random.randint(1, 97)
        if self._pid > 0x3FFFFF:
            self._pid = 100_000
        return self._pid

    def task_duration(self, wtype: str) -> float:
        if wtype in self.task_seconds:
            return self.task_seconds[wtype]
        if self.task_seconds_default is not None:
            return self.task_seconds_default
        return self.config.task_seconds

    # -- config flock (lock_config) ----------------------------------------

    def wait_flock(self, vmid: int) -> None:
        """Wait for a CT's config flock like lock_config (10 s by default)."""
        deadline = None
        while vmid in self.flocks:
            if deadline is None:
                deadline = time.monotonic() + self.lock_timeout
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise die(f"can't lock file '/run/lock/lxc/pve-config-{vmid}.lock' - got timeout")
            self.cond.wait(min(remaining, 0.05))

    # -- tasks ---------------------------------------------------------------

    def fork_worker(
        self, node: str, wtype: str, wid: str, user: str, body: WorkerBody, flock: int | None = None
    ) -> str:
        """Start a worker; ``flock`` is a CT whose config flock the worker
        holds from the first instant (lock_config around the whole worker)."""
        now = self.now()
        nd = self.nodes[node]
        pid = self.next_pid()
        pstart = int((now - nd.boot_time) * 100)
        upid = make_upid(node, pid, pstart, int(now), wtype, wid, user)
        task = Task(upid, node, pid, pstart, int(now), wtype, wid, user)
        self.tasks[upid] = task
        self._trim_tasks(node)
        fault = self.faults.take_task_fault(wtype)
        ctx = WorkerContext(self, task, fault, self.task_duration(wtype))
        if flock is not None:
            ctx.hold_flock(flock)
        self.workers[upid] = _Running(body(ctx), ctx, now)
        self.mark_dirty()
        return upid

    def _trim_tasks(self, node: str) -> None:
        mine = [t for t in self.tasks.values() if t.node == node and t.status == "stopped"]
        excess = len(mine) - MAX_TASKS_PER_NODE
        for task in sorted(mine, key=lambda t: t.starttime)[: max(0, excess)]:
            del self.tasks[task.upid]

    def tick(self) -> None:
        """Resume every worker whose sleep is over."""
        with self.lock:
            progressed = True
            while progressed:
                progressed = False
                now = self.now()
                for upid, run in list(self.workers.items()):
                    if run.wake_at <= now:
                        self._step(upid, run, now)
                        progressed = True

    def abort_worker(self, upid: str) -> None:
        """Kill a worker as SIGTERM would: it dies with 'received interrupt'
        where it stands, so its own cleanup runs."""
        run = self.workers.get(upid)
        if run is None:
            return
        try:
            if not run.started:
                # Enter the body first, or throw() would skip its handlers.
                run.started = True
                next(run.gen)
            run.gen.throw(TaskFailure("received interrupt"))
        except StopIteration:
            self._finish(upid, run, None)
        except TaskFailure as exc:
            self._finish(upid, run, exc.message)
        except ApiError as exc:
            self._finish(upid, run, exc.message.rstrip("\n"))
        else:
            run.gen.close()
            self._finish(upid, run, "received interrupt")

    def _step(self, upid: str, run: _Running, now: float) -> None:
        run.started = True
        try:
            delay = next(run.gen)
        except StopIteration:
            self._finish(upid, run, None)
        except TaskFailure as exc:
            self._finish(upid, run, exc.message)
        except ApiError as exc:
            self._finish(upid, run, exc.message.rstrip("\n"))
        except Exception as exc:  # a simulator bug must not kill the scheduler
            log.error("worker %s crashed: %s", upid, traceback.format_exc())
            self._finish(upid, run, f"internal error: {exc}")
        else:
            # Sleep from the scheduled time, not from when the scheduler got
            # round to it, so a task takes exactly its duration in sim time.
            run.wake_at = run.wake_at + max(0.0, float(delay))
            self.mark_dirty()

    def _finish(self, upid: str, run: _Running, error: str | None) -> None:
        task = run.ctx.task
        fault = run.ctx.fault
        if error is None and fault is not None and fault.warning:
            run.ctx.warn(fault.message)
        task.status = "stopped"
        task.endtime = int(self.now())
        if error is not None:
            task.exitstatus = error
            task.log.append(f"TASK ERROR: {error}")
        elif task.warnings:
            task.exitstatus = f"WARNINGS: {task.warnings}"
            task.log.append(f"TASK WARNINGS: {task.warnings}")
        else:
            task.exitstatus = "OK"
            task.log.append("TASK OK")
        for vmid in list(run.ctx.flocks):
            run.ctx.release_flock(vmid)
        del self.workers[upid]
        self.mark_dirty()
        self.cond.notify_all()

    # -- storage -----------------------------------------------------------

    def storage(self, node: str, sid: str) -> Storage:
        st = self.nodes[node].storages.get(sid)
        if st is None:
            raise die(f"storage '{sid}' does not exist")
        return st

    def alloc_disk(self, node: str, sid: str, vmid: int, size: int, prefix: str = "vm") -> str:
        """Allocate a CT volume; the error mimics lvcreate on a full VG."""
        st = self.storage(node, sid)
        n = 0
        while f"{prefix}-{vmid}-disk-{n}" in st.volumes:
            n += 1
        volname = f"{prefix}-{vmid}-disk-{n}"
        if size > st.avail():
            extents = 4 * MIB
            raise TaskFailure(
                f"lvcreate 'pve/{volname}' error:   Volume group \"pve\" has insufficient free space "
                f"({st.avail() // extents} extents): {size // extents} required."
            )
        st.volumes[volname] = Volume(size, vmid, "raw", "rootdir", int(self.now()))
        return f"{sid}:{volname}"

    def free_volume(self, node: str, volid: str) -> bool:
        sid, _, volname = volid.partition(":")
        st = self.nodes[node].storages.get(sid)
        if st is None or volname not in st.volumes:
            return False
        del st.volumes[volname]
        return True

    def volume(self, node: str, volid: str) -> Volume | None:
        sid, _, volname = volid.partition(":")
        st = self.nodes[node].storages.get(sid)
        return st.volumes.get(volname) if st else None

    # -- misc --------------------------------------------------------------

    def guests_on(self, node: str) -> list[Guest]:
        return sorted((g for g in self.guests.values() if g.node == node), key=lambda g: g.vmid)

    def remove_vm_access(self, vmid: int) -> None:
        """AccessControl::remove_vm_access: drop /vms/N ACLs (and pool membership)."""
        path = f"/vms/{vmid}"
        self.access.acl = [a for a in self.access.acl if a.path != path]
