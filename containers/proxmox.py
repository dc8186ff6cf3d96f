"""A typed Proxmox VE client on proxmoxer, with errors sorted into the portal's hierarchy.

Facts it relies on (see docs/architecture.md): the error text is the HTTP reason
phrase (proxmoxer puts it in `content`); booleans must be sent as 1/0; nextid is a
JSON string; a task's success is `OK` or `WARNINGS: n`; 595/596 are pveproxy's
"node unreachable" pseudo-statuses, worth retrying like lock timeouts and no quorum.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import requests
from django.conf import settings
from proxmoxer import ProxmoxAPI
from proxmoxer.core import AuthenticationError, ResourceException
from requests.adapters import HTTPAdapter

from portal.errors import ErrorCode, NotFound, UpstreamError, UpstreamUnavailable

from .taskwatch import durations, watch_for

if TYPE_CHECKING:
    from networking.models import Node

log = logging.getLogger(__name__)

# Texts (from Proxmox's error catalogue) that mean "try again in a moment".
TRANSIENT_MARKERS = (
    "got timeout",
    "no quorum",
    "CT is locked",
    "VM is locked",
    "Connection refused",
    "No route to host",
    "Connection timed out",
    "unexpected status",
)

# pveproxy's pseudo-statuses for "the node the call was proxied to does not answer".
NODE_DOWN_STATUSES = (595, 596)


class ProxmoxError(UpstreamError):
    """Proxmox refused a call for good (bad parameter, no space, missing template...)."""

    code = ErrorCode.PROXMOX_ERROR

    def __init__(
        self, message: str, *, status: int = 0, errors: dict[str, str] | None = None, **extra: Any
    ) -> None:
        super().__init__(message, **extra)
        self.status = status
        self.errors = errors or {}


class ProxmoxUnavailable(UpstreamUnavailable):
    """Proxmox (or the node) cannot be reached or is busy; the job retries.

    `unreachable` marks the errors that say the node itself is not answering (595/596,
    no quorum, a refused or timed-out connection): they feed the node's health
    (containers.health). `reason` is the short cause ("595 Connection refused").
    """

    code = ErrorCode.PROXMOX_UNAVAILABLE

    def __init__(
        self, message: str, *, unreachable: bool = False, reason: str = "", **extra: Any
    ) -> None:
        super().__init__(message, **extra)
        self.unreachable = unreachable
        self.reason = reason or message


class ProxmoxNotFound(ProxmoxError, NotFound):
    code = ErrorCode.PROXMOX_NOT_FOUND


class VmidTaken(ProxmoxError):
    """The VMID is used by a guest on Proxmox: take another one."""

    code = ErrorCode.VMID_TAKEN


class TaskFailed(ProxmoxError):
    """A Proxmox task ended with an error; `message` is Proxmox's own text."""

    code = ErrorCode.PROXMOX_TASK_FAILED

    def __init__(self, message: str, *, upid: str, **extra: Any) -> None:
        super().__init__(message, **extra)
        self.upid = upid


class TaskFailedTransient(ProxmoxUnavailable):
    code = ErrorCode.PROXMOX_TASK_RETRYABLE

    def __init__(self, message: str, *, upid: str, **extra: Any) -> None:
        super().__init__(message, **extra)
        self.upid = upid


def is_transient_text(text: str) -> bool:
    return any(marker in text for marker in TRANSIENT_MARKERS)


def classify(exc: Exception) -> Exception:
    """Map a proxmoxer/requests exception to a portal error."""
    if isinstance(exc, ResourceException):
        status = int(exc.status_code)
        text = str(exc.content or exc.status_message or "").strip()
        errors = exc.errors if isinstance(exc.errors, dict) else {}
        errors = {k: str(v) for k, v in errors.items() if k != "errors" or v}
        if status >= 595 or status in (502, 503, 504) or is_transient_text(text):
            return ProxmoxUnavailable(
                f"Proxmox is unavailable ({status} {text})",
                status=status,
                unreachable=status in NODE_DOWN_STATUSES or "no quorum" in text,
                reason=f"{status} {text}",
            )
        if "already exists" in text:
            return VmidTaken(text, status=status)
        if "does not exist" in text and "Configuration file" in text:
            return ProxmoxNotFound(text, status=status)
        if status == 401:
            return ProxmoxError(
                f"Proxmox rejected the node's API token ({text}); an operator must check it",
                status=status,
            )
        if status == 403:
            return ProxmoxError(
                f"the portal's API token lacks a privilege on Proxmox ({text})", status=status
            )
        if errors:
            detail = "; ".join(f"{k}: {v.strip()}" for k, v in errors.items())
            return ProxmoxError(f"{text}: {detail}", status=status, errors=errors)
        return ProxmoxError(text or f"Proxmox answered {status}", status=status)
    if isinstance(exc, AuthenticationError):
        return ProxmoxError(f"cannot authenticate to Proxmox: {exc}")
    if isinstance(exc, requests.exceptions.SSLError):
        return ProxmoxError(f"TLS verification of the Proxmox API failed: {exc}")
    if isinstance(exc, requests.exceptions.RequestException):
        # A refused or timed-out connection: nobody answers. A read timeout: slow, not down.
        return ProxmoxUnavailable(
            f"cannot reach Proxmox: {exc.__class__.__name__}",
            unreachable=isinstance(exc, requests.exceptions.ConnectionError),
            reason=exc.__class__.__name__,
        )
    return exc


def _bool(value: bool) -> int:
    """Proxmox booleans are strictly 1 or 0 on the wire."""
    return 1 if value else 0


@dataclass(frozen=True)
class Upid:
    raw: str
    node: str
    type: str
    id: str
    user: str

    @classmethod
    def parse(cls, raw: str) -> Upid:
        parts = raw.split(":")
        if len(parts) != 9 or parts[0] != "UPID":
            raise ProxmoxError(f"not a task id: {raw!r}")
        return cls(raw=raw, node=parts[1], type=parts[5], id=parts[6], user=parts[7])


def task_succeeded(exitstatus: str) -> bool:
    return exitstatus == "OK" or exitstatus.startswith("WARNINGS:")


class _FingerprintAdapter(HTTPAdapter):
    """Pins the server certificate's SHA-256 fingerprint instead of a CA chain."""

    def __init__(self, fingerprint: str) -> None:
        self._fingerprint = fingerprint.replace(":", "").lower()
        super().__init__()

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        kwargs["assert_fingerprint"] = self._fingerprint
        super().init_poolmanager(*args, **kwargs)


_local = threading.local()


class ProxmoxClient:
    """Operations the portal needs, on one node's API endpoint."""

    def __init__(
        self,
        *,
        api_url: str,
        token_id: str,
        token_secret: str,
        verify: bool | str = True,
        fingerprint: str = "",
        timeout: float | None = None,
    ) -> None:
        parts = urlsplit(api_url)
        self.endpoint = api_url
        self._issued: dict[str, float] = {}
        if parts.scheme != "https" or not parts.hostname:
            raise ProxmoxError(f"the node's API URL must be https://host:port, not {api_url!r}")
        user, _, token_name = token_id.partition("!")
        if not token_name:
            raise ProxmoxError("the API token id must look like user@realm!name")
        self.api = ProxmoxAPI(
            parts.hostname,
            port=parts.port or 8006,
            user=user,
            token_name=token_name,
            token_value=token_secret,
            verify_ssl=False if fingerprint else verify,
            timeout=timeout or settings.PROXMOX_TIMEOUT,
        )
        session = self.api._store["session"]
        # The API is reached directly: skip requests' per-call scan of the environment for
        # proxies and netrc (about 1 ms of CPU per call, most of a task poll's cost).
        session.trust_env = False
        if fingerprint:
            session.mount("https://", _FingerprintAdapter(fingerprint))

    @classmethod
    def for_node(cls, node: Node) -> ProxmoxClient:
        """A client per node and thread, reused so that keep-alive connections stay warm."""
        cache: dict[tuple[Any, ...], ProxmoxClient] = _local.__dict__.setdefault("clients", {})
        verify: bool | str = node.ca_bundle or node.verify_tls
        key = (
            node.pk,
            node.api_url,
            node.token_id,
            node.token_secret,
            verify,
            node.tls_fingerprint,
        )
        client = cache.get(key)
        if client is None:
            client = cls(
                api_url=node.api_url,
                token_id=node.token_id,
                token_secret=node.token_secret,
                verify=verify,
                fingerprint=node.tls_fingerprint,
            )
            cache[key] = client
        return client

    # -- plumbing ----------------------------------------------------------------
    def _call(self, fn: Callable[[], Any]) -> Any:
        try:
            result = fn()
        except Exception as exc:  # sorted into the hierarchy right here
            mapped = classify(exc)
            if mapped is exc:
                raise
            raise mapped from exc
        if isinstance(result, str) and result.startswith("UPID:"):
            # When the task was started: wait_task measures (and learns) from here.
            if len(self._issued) > 1000:
                self._issued.clear()  # tasks started but never waited on
            self._issued[result] = time.monotonic()
        return result

    # -- cluster -----------------------------------------------------------------
    def version(self) -> dict[str, Any]:
        return self._call(lambda: self.api.version.get())

    def cluster_resources(self, type: str | None = "vm") -> list[dict[str, Any]]:
        """`/cluster/resources` of one type ("vm", "node", "storage", "sdn"), or of every
        type (None): the guests and the nodes' states in one call."""
        params = {} if type is None else {"type": type}
        return self._call(lambda: self.api.cluster.resources.get(**params)) or []

    def guests(self) -> list[dict[str, Any]]:
        """Every guest (LXC and QEMU) the cluster knows, from one call."""
        return [r for r in self.cluster_resources("vm") if r.get("type") in ("lxc", "qemu")]

    def nodes(self) -> list[dict[str, Any]]:
        return self._call(lambda: self.api.nodes.get()) or []

    def node_status(self, node: str) -> dict[str, Any]:
        return self._call(lambda: self.api.nodes(node).status.get())

    def templates(self, node: str, storage: str = "local") -> list[dict[str, Any]]:
        return (
            self._call(lambda: self.api.nodes(node).storage(storage).content.get(content="vztmpl"))
            or []
        )

    # -- containers --------------------------------------------------------------
    def create_container(
        self,
        node: str,
        *,
        vmid: int,
        ostemplate: str,
        hostname: str,
        cores: int,
        memory_mib: int,
        swap_mib: int,
        rootfs: str,
        net0: str,
        tags: str,
        description: str,
        ssh_public_keys: str = "",
        start: bool = False,
        unprivileged: bool = True,
        nesting: bool = True,
        onboot: bool = True,
    ) -> str:
        params: dict[str, Any] = {
            "vmid": vmid,
            "ostemplate": ostemplate,
            "hostname": hostname,
            "cores": cores,
            "memory": memory_mib,
            "swap": swap_mib,
            "rootfs": rootfs,  # always: the default storage has no container directories
            "net0": net0,
            "unprivileged": _bool(unprivileged),
            "features": f"nesting={_bool(nesting)}",
            "onboot": _bool(onboot),
            "start": _bool(start),
            "tags": tags,
            "description": description,
        }
        if ssh_public_keys:
            params["ssh-public-keys"] = ssh_public_keys
        return self._call(lambda: self.api.nodes(node).lxc.post(**params))

    def lxc_list(self, node: str) -> list[dict[str, Any]]:
        """Every CT on one node with its status, limits and tags (GET /nodes/{node}/lxc)."""
        return self._call(lambda: self.api.nodes(node).lxc.get()) or []

    def container_config(self, node: str, vmid: int) -> dict[str, Any]:
        return self._call(lambda: self.api.nodes(node).lxc(vmid).config.get())

    def update_config(
        self, node: str, vmid: int, *, digest: str | None = None, **options: Any
    ) -> None:
        params = {k: v for k, v in options.items() if v is not None}
        if digest:
            params["digest"] = digest
        self._call(lambda: self.api.nodes(node).lxc(vmid).config.put(**params))

    def container_status(self, node: str, vmid: int) -> dict[str, Any]:
        return self._call(lambda: self.api.nodes(node).lxc(vmid).status.current.get())

    def rrddata(
        self, node: str, vmid: int, *, timeframe: str, cf: str = "AVERAGE"
    ) -> list[dict[str, Any]]:
        """A CT's RRD points, oldest first; a bucket without data is `{"time"}` only."""
        return (
            self._call(
                lambda: self.api.nodes(node).lxc(vmid).rrddata.get(timeframe=timeframe, cf=cf)
            )
            or []
        )

    def interfaces(self, node: str, vmid: int) -> list[dict[str, Any]] | None:
        return self._call(lambda: self.api.nodes(node).lxc(vmid).interfaces.get())

    def start(self, node: str, vmid: int) -> str:
        return self._call(lambda: self.api.nodes(node).lxc(vmid).status.start.post())

    def stop(self, node: str, vmid: int) -> str:
        return self._call(lambda: self.api.nodes(node).lxc(vmid).status.stop.post())

    def shutdown(self, node: str, vmid: int, *, timeout: int = 60, force_stop: bool = True) -> str:
        return self._call(
            lambda: (
                self.api.nodes(node)
                .lxc(vmid)
                .status.shutdown.post(timeout=timeout, forceStop=_bool(force_stop))
            )
        )

    def reboot(self, node: str, vmid: int) -> str:
        return self._call(lambda: self.api.nodes(node).lxc(vmid).status.reboot.post())

    def resize_disk(self, node: str, vmid: int, *, disk: str, size: str) -> str | None:
        return self._call(lambda: self.api.nodes(node).lxc(vmid).resize.put(disk=disk, size=size))

    def delete_container(
        self, node: str, vmid: int, *, purge: bool = True, force: bool = False
    ) -> str:
        return self._call(
            lambda: (
                self.api.nodes(node)
                .lxc(vmid)
                .delete(purge=_bool(purge), force=_bool(force), **{"destroy-unreferenced-disks": 1})
            )
        )

    # -- tasks -------------------------------------------------------------------
    def task_status(self, upid: str) -> dict[str, Any]:
        node = Upid.parse(upid).node
        return self._call(lambda: self.api.nodes(node).tasks(upid).status.get())

    def active_tasks(self, node: str) -> list[dict[str, Any]]:
        """The node's running tasks (and, on Proxmox, ones that just ended), newest first."""
        return self._call(lambda: self.api.nodes(node).tasks.get(source="active", limit=1000)) or []

    def wait_task(
        self, upid: str, *, timeout: float | None = None, on_poll: Callable[[], None] | None = None
    ) -> str:
        """Wait until a task stops; return its exit status, raise if it failed.

        The wait shares one poll of the node's active tasks with every other task this
        process waits on, and asks for the task's own status when it leaves that list,
        when the last task of its kind took as long, and at least every
        PROXMOX_TASK_CHECK_INTERVAL (see `containers.taskwatch`).
        """
        parsed = Upid.parse(upid)
        node = parsed.node
        started = self._issued.pop(upid, None) or time.monotonic()
        deadline = started + (timeout or settings.PROXMOX_TASK_TIMEOUT)
        fast = settings.PROXMOX_TASK_POLL_INTERVAL
        kind = (self.endpoint, node, parsed.type)
        guess = durations.get(kind)
        if guess is not None and guess > settings.PROXMOX_TASK_POLL_SLOW_AFTER:
            guess = None
        # Without a guess yet (the first task of its kind), it checks on its own every
        # poll interval from its start, as if nothing were shared.
        guess_at = started + (guess if guess is not None else fast)
        own_at = guess_at
        watch = watch_for(self.endpoint, node)
        # The shared poll is for tasks that outlast their guess (or, without one, their
        # first seconds of checking on their own).
        poll_from = (
            guess_at if guess is not None else started + settings.PROXMOX_TASK_POLL_SLOW_AFTER
        )
        event = watch.add(upid, fast, poll_from=poll_from)
        outcome = "early"  # how the guess fared: early (done before it), hit or late
        retries = 0
        try:
            while True:
                now = time.monotonic()
                if event.is_set() or now >= own_at:
                    at_guess = guess is not None and outcome == "early" and now >= guess_at
                    event.clear()
                    status = self.task_status(upid)
                    if status.get("status") == "stopped":
                        if at_guess:
                            outcome = "hit"
                        durations.learn(kind, took=time.monotonic() - started, outcome=outcome)
                        return self._exit_status(upid, str(status.get("exitstatus", "")))
                    own_at = now + settings.PROXMOX_TASK_CHECK_INTERVAL
                    if guess is None and now - started < settings.PROXMOX_TASK_POLL_SLOW_AFTER:
                        own_at = now + fast
                    elif guess is not None and outcome != "hit" and now >= guess_at:
                        # Too early: look again shortly, a little later each time, until
                        # the shared poll is the sooner of the two.
                        outcome = "late"
                        step = max(0.01, 0.02 * guess) * 2**retries
                        retries += 1
                        if step < fast:
                            own_at = now + step
                if now > deadline:
                    raise ProxmoxUnavailable(f"the Proxmox task {upid} did not finish in time")
                if on_poll is not None:
                    on_poll()
                if now - started > settings.PROXMOX_TASK_POLL_SLOW_AFTER:
                    # A long task: the shared poll may come less often for it.
                    watch.set_interval(upid, settings.PROXMOX_TASK_POLL_SLOW_INTERVAL)
                if watch.poll_if_due(lambda: self.active_tasks(node)):
                    continue  # this thread made the shared poll; it may have woken us
                # Sleep until woken by a poll, our own check is due, or the next poll is.
                now = time.monotonic()
                event.wait(timeout=max(0.0, min(own_at - now, max(watch.due_in(), 0.001), 1.0)))
        finally:
            watch.remove(upid)

    @staticmethod
    def _exit_status(upid: str, exitstatus: str) -> str:
        if task_succeeded(exitstatus):
            return exitstatus
        if is_transient_text(exitstatus):
            raise TaskFailedTransient(f"Proxmox task failed: {exitstatus}", upid=upid)
        raise TaskFailed(exitstatus or "the Proxmox task failed without a message", upid=upid)

    # -- access (used by the identity features) ----------------------------------
    def grant_acl(self, *, path: str, role: str, users: str, delete: bool = False) -> None:
        self._call(
            lambda: self.api.access.acl.put(
                path=path, roles=role, users=users, delete=_bool(delete)
            )
        )

    def acl(self) -> list[dict[str, Any]]:
        return self._call(lambda: self.api.access.acl.get()) or []

    def realm_sync(self, realm: str) -> str:
        return self._call(
            lambda: self.api.access.domains(realm).sync.post(scope="users", **{"enable-new": 1})
        )
