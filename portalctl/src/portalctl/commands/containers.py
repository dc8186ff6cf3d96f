"""containers list|show|top|security|create|start|stop|restart|resize|delete|extend|wait|exists."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Annotated, Any

import typer

from ..client import PAGE_SIZE, walked
from ..errors import CliError, Exit
from ..follow import follow, outcome
from ..output import Column, fields, print_json, result, say, table, text, when
from ..resolve import container, container_path, find_container, ssh_login, ssh_port
from ..state import SESSION
from ._common import JsonOpt, NameArg, WaitOpt, confirm
from .alerts import alerts_text
from .jobs_common import job_done_line
from .security import security

app = typer.Typer(no_args_is_help=True, help="Create, list, change and delete containers.")

LIST_COLUMNS: list[Column] = [
    ("NAME", "hostname"),
    ("VMID", "vmid"),
    ("SITE", "site"),
    ("NODE", "node"),
    ("STATUS", "status"),
    ("IP", "ip"),
    ("TEMPLATE", "template"),
    ("OWNER", "owner"),
    ("JOB", lambda c: str(c["active_job"])[:8] if c.get("active_job") else ""),
]
SIZE_UNITS = {"": 1, "m": 1, "mi": 1, "mib": 1, "g": 1024, "gi": 1024, "gib": 1024}


def size_mib(value: str | None, what: str) -> int | None:
    """'512', '512M' or '2G' as MiB."""
    if value is None:
        return None
    raw = value.strip().lower()
    digits = raw.rstrip("abcdefghijklmnopqrstuvwxyz")
    unit = raw[len(digits) :]
    if not digits.isdigit() or unit not in SIZE_UNITS:
        raise CliError(
            f"{what} is a size in MiB, or with a unit: 512M, 2G (got {value!r})", Exit.USAGE
        )
    return int(digits) * SIZE_UNITS[unit]


def size_gib(value: str | None, what: str) -> int | None:
    """'10' or '10G' as GiB."""
    if value is None:
        return None
    raw = value.strip().lower().removesuffix("ib").removesuffix("i").removesuffix("g")
    if not raw.isdigit():
        raise CliError(f"{what} is a size in GiB: 10 or 10G (got {value!r})", Exit.USAGE)
    return int(raw)


CoresOpt = Annotated[int | None, typer.Option(min=1, help="CPU cores.")]
MemoryOpt = Annotated[str | None, typer.Option(help="Memory: MiB, or 512M, 2G.")]
SwapOpt = Annotated[str | None, typer.Option(help="Swap: MiB, or 512M, 1G.")]
DiskOpt = Annotated[str | None, typer.Option(help="Disk in GiB: 8 or 8G (it only grows).")]


# -- reading ---------------------------------------------------------------------------------
LIST_LIMIT = PAGE_SIZE  # one request: the largest page


@app.command("list")
def list_(
    status: Annotated[str | None, typer.Option(help="pending, running, stopped, error...")] = None,
    node: Annotated[str | None, typer.Option(help="A node's name, e.g. pve1.")] = None,
    site: Annotated[str | None, typer.Option(help="A site's slug.")] = None,
    hostname: Annotated[str | None, typer.Option(help="Names containing this.")] = None,
    owner: Annotated[str | None, typer.Option(help="An owner's username (staff).")] = None,
    limit: Annotated[
        int | None,
        typer.Option("--limit", "-n", min=1, help=f"At most this many (default {LIST_LIMIT})."),
    ] = None,
    all_: Annotated[
        bool, typer.Option("--all", "-a", help="Every one: walk the whole list.")
    ] = False,
    json_: JsonOpt = False,
) -> None:
    """Your containers (and those you collaborate on; staff: everyone's), by site and VMID.

    The first 200 unless --limit or --all says otherwise; a list cut short says so on stderr.
    """
    if all_ and limit is not None:
        raise CliError("--all or --limit, not both", Exit.USAGE)
    rows, more = walked(
        SESSION.api().walk(
            "containers/",
            limit=None if all_ else limit or LIST_LIMIT,
            status=status,
            node=node,
            site=site,
            hostname=hostname,
            owner=owner,
        )
    )
    if json_:
        print_json(rows)
    else:
        table(rows, LIST_COLUMNS, empty="no containers")
    if more:
        say(f"the first {len(rows)} shown; there are more: --all for every one, or --limit N")


def _bytes(value: Any) -> str:
    """1536 -> '1.5K', in powers of 1024 as `free -h` prints them."""
    if value is None:
        return "-"
    size = float(value)
    for unit in ("", "K", "M", "G", "T"):
        if abs(size) < 1024 or unit == "T":
            return f"{size:.0f}{unit}" if unit == "" else f"{size:.1f}{unit}"
        size /= 1024
    return str(value)


def _metric(c: dict[str, Any], key: str) -> Any:
    return (c.get("metrics") or {}).get(key)


def _cpu_cell(c: dict[str, Any]) -> str:
    cpu, cpus = _metric(c, "cpu"), _metric(c, "cpus")
    return "-" if cpu is None else f"{cpu * 100:.1f}% of {cpus:g}"


def _mem_cell(c: dict[str, Any]) -> str:
    mem, maxmem = _metric(c, "mem"), _metric(c, "maxmem")
    if mem is None:
        return "-"
    share = f" ({mem / maxmem * 100:.0f}%)" if maxmem else ""
    return f"{_bytes(mem)}/{_bytes(maxmem)}{share}"


def _io_cell(c: dict[str, Any], a: str, b: str) -> str:
    x, y = _metric(c, a), _metric(c, b)
    return f"{_bytes(x)}/s {_bytes(y)}/s" if x is not None or y is not None else "-"


TOP_COLUMNS: list[Column] = [
    ("NAME", "hostname"),
    ("NODE", "node"),
    ("CPU", _cpu_cell),
    ("MEMORY", _mem_cell),
    ("NET IN/OUT", lambda c: _io_cell(c, "netin_rate", "netout_rate")),
    ("DISK R/W", lambda c: _io_cell(c, "diskread_rate", "diskwrite_rate")),
    ("SAMPLED", lambda c: when(_metric(c, "sampled_at"))),
]


@app.command()
def top(
    sort: Annotated[
        str, typer.Option("--sort", "-s", help="cpu (share of its cores) or mem (bytes).")
    ] = "cpu",
    limit: Annotated[int, typer.Option("--limit", "-n", min=1, max=200)] = 10,
    site: Annotated[str | None, typer.Option(help="A site's slug.")] = None,
    node: Annotated[str | None, typer.Option(help="A node's name, e.g. pve1.")] = None,
    json_: JsonOpt = False,
) -> None:
    """The busiest running containers, from the portal's latest metrics poll."""
    if sort not in ("cpu", "mem"):
        raise CliError(f"--sort is cpu or mem (got {sort!r})", Exit.USAGE)
    body = SESSION.api().get(
        "containers/",
        status="running",
        ordering=f"-{sort},hostname",
        page_size=limit,
        site=site,
        node=node,
    )
    rows = body.get("results", []) if isinstance(body, dict) else list(body)
    if json_:
        print_json(rows)
        return
    table(rows, TOP_COLUMNS, empty="no running containers")


def ssh_line(c: dict[str, Any], ports: list[dict[str, Any]], me: dict[str, Any]) -> str:
    port = ssh_port(ports)
    return f"ssh -p {port} {ssh_login(c, me)}@{c.get('fqdn')}" if port else ""


@app.command()
def show(name: NameArg, json_: JsonOpt = False) -> None:
    """One container: where it runs, its resources, addresses, job and open alerts."""
    api = SESSION.api()
    c = container(api, name)
    if json_:
        print_json(c)
        return
    ports = api.get(container_path(c, "ports/"))
    fields(
        [
            ("name", c.get("hostname")),
            (
                "status",
                c["status"] + (f" ({c['status_message']})" if c.get("status_message") else ""),
            ),
            ("vmid", f"{c.get('vmid')} on {text(c.get('node'))} (site {c.get('site')})"),
            ("owner", c.get("owner")),
            ("template", c.get("template")),
            (
                "resources",
                f"{c.get('cores')} cores, {c.get('memory_mib')} MiB memory, "
                f"{c.get('swap_mib')} MiB swap, {c.get('disk_gib')} GiB disk",
            ),
            ("ip", f"{text(c.get('ip'))} (mac {text(c.get('mac'))})"),
            ("url", c.get("url")),
            ("ssh", ssh_line(c, ports, SESSION.me()) or "-"),
            ("created", when(c.get("created_at"))),
            ("running since", when(c.get("running_since"))),
            ("job", c.get("active_job") or "none running"),
            ("expires", expiry_line(c)),
            ("alerts", alerts_text(c.get("alerts"))),
        ]
    )


app.command()(security)  # commands/security.py


def expiry_line(c: dict[str, Any]) -> str:
    if not c.get("expires_at"):
        return "never"
    return (
        f"{when(c.get('expires_at'))} (stopped then; deleted {when(c.get('deletes_at'))} "
        f"unless extended: portalctl containers extend {c.get('hostname')} --days N)"
    )


@app.command()
def extend(
    name: NameArg,
    days: Annotated[
        int, typer.Option(min=1, help="Move the expiry N days later (from now if it has passed).")
    ],
    json_: JsonOpt = False,
) -> None:
    """Extend a container's expiry (owner or staff; an owner within the portal's limit)."""
    api = SESSION.api()
    c = api.post(container_path(container(api, name), "extend/"), {"days": days})
    if json_:
        print_json(c)
        return
    result(f"{c.get('hostname')} expires {when(c.get('expires_at'))}")


@app.command()
def exists(name: NameArg, json_: JsonOpt = False) -> None:
    """Exit 0 if the container exists (and you may see it), 1 if not. Prints nothing
    (with --json: the container, or null)."""
    found = find_container(SESSION.api(), name)
    if json_:
        print_json(found)
    if found is None:
        raise typer.Exit(1)


# -- jobs ----------------------------------------------------------------------------------
def finish(accepted: dict[str, Any], *, wait: bool, json_: bool, verb: str, done: str = "") -> None:
    """Report a 202 (the job and the container), or follow the job first with --wait;
    `done` is what to say when it succeeded (else what the job's kind suggests)."""
    api = SESSION.api()
    job, c = accepted["job"], accepted["container"]
    if wait:
        job = follow(api, job)
        try:
            c = api.get(container_path(c))
        except CliError as exc:
            if exc.exit_code != Exit.NOT_FOUND:
                raise
            c = {**c, "status": "deleted"}
    if json_:
        print_json({"job": job, "container": c})
    elif wait:
        if job.get("status") == "succeeded":
            result(done or job_done_line(job, c))
    else:
        say(
            f"{verb} {c['hostname']}: job {job['id']} {job['status']}. "
            f"Follow it with: portalctl containers wait {c['hostname']}"
        )
    if wait:
        outcome(job, what=lambda j: f"{j.get('kind')} of {c['hostname']} (job {j.get('id')})")


def _action(name: str, action: str, *, wait: bool, json_: bool, verb: str) -> None:
    api = SESSION.api()
    c = container(api, name)
    finish(api.post(container_path(c, f"{action}/")), wait=wait, json_=json_, verb=verb)


@app.command()
def start(name: NameArg, wait: WaitOpt = False, json_: JsonOpt = False) -> None:
    """Start a stopped container."""
    _action(name, "start", wait=wait, json_=json_, verb="Starting")


@app.command()
def stop(name: NameArg, wait: WaitOpt = False, json_: JsonOpt = False) -> None:
    """Shut a container down."""
    _action(name, "stop", wait=wait, json_=json_, verb="Stopping")


@app.command()
def restart(name: NameArg, wait: WaitOpt = False, json_: JsonOpt = False) -> None:
    """Restart a container."""
    _action(name, "restart", wait=wait, json_=json_, verb="Restarting")


@app.command()
def resize(
    name: NameArg,
    cores: CoresOpt = None,
    memory: MemoryOpt = None,
    swap: SwapOpt = None,
    disk: DiskOpt = None,
    wait: WaitOpt = False,
    json_: JsonOpt = False,
) -> None:
    """Change a container's cores, memory, swap or disk (the disk only grows)."""
    body = {
        "cores": cores,
        "memory_mib": size_mib(memory, "--memory"),
        "swap_mib": size_mib(swap, "--swap"),
        "disk_gib": size_gib(disk, "--disk"),
    }
    body = {k: v for k, v in body.items() if v is not None}
    if not body:
        raise CliError("say what to change: --cores, --memory, --swap or --disk", Exit.USAGE)
    api = SESSION.api()
    c = container(api, name)
    finish(api.patch(container_path(c), body), wait=wait, json_=json_, verb="Resizing")


@app.command()
def delete(
    name: NameArg,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask.")] = False,
    wait: WaitOpt = False,
    json_: JsonOpt = False,
) -> None:
    """Delete a container and its disk (asks first, unless --yes)."""
    api = SESSION.api()
    c = container(api, name)
    confirm(f"Delete {c['hostname']} (VMID {c.get('vmid')}) and its disk?", yes=yes)
    finish(api.delete(container_path(c)), wait=wait, json_=json_, verb="Deleting")


@app.command()
def wait(name: NameArg, json_: JsonOpt = False) -> None:
    """Wait until no job of the container runs; exit 0 if its last job succeeded, 6 if not."""
    api = SESSION.api()
    c = container(api, name)
    if c.get("active_job"):
        job = follow(api, api.get(f"jobs/{c['active_job']}/"))
    else:
        latest = api.get("jobs/", container=c["id"], ordering="-created_at", page_size=1)
        items = latest.get("results", [])
        if not items:
            if json_:
                print_json(None)
            else:
                say(f"{c['hostname']} has no job")
            return
        job = items[0]
    if json_:
        print_json(job)
    elif job.get("status") == "succeeded":
        result(job_done_line(job, c))
    outcome(job, what=lambda j: f"{j.get('kind')} of {c['hostname']} (job {j.get('id')})")


# -- create ----------------------------------------------------------------------------------
def _ssh_keys(files: list[Path] | None, from_profile: bool) -> str:
    keys: list[str] = []
    for path in files or []:
        try:
            keys.append(path.expanduser().read_text(encoding="utf-8").strip())
        except OSError as exc:
            raise CliError(f"cannot read {path}: {exc.strerror}", Exit.USAGE) from exc
    if from_profile:
        profile_keys = [str(k["key"]) for k in SESSION.me().get("ssh_keys") or []]
        if not profile_keys:
            raise CliError("your profile has no SSH keys (add one: portalctl keys add FILE)")
        keys.extend(profile_keys)
    return "\n".join(k for k in keys if k)


@app.command()
def create(
    name: Annotated[str, typer.Argument(metavar="NAME", help="The hostname (one DNS label).")],
    template: Annotated[str, typer.Option("--template", "-t", help="e.g. debian-12")],
    cores: CoresOpt = None,
    memory: MemoryOpt = None,
    swap: SwapOpt = None,
    disk: DiskOpt = None,
    ssh_key: Annotated[
        list[Path] | None, typer.Option(help="A public key file to install (repeatable).")
    ] = None,
    ssh_key_from_profile: Annotated[
        bool, typer.Option(help="Install the SSH keys of your profile.")
    ] = False,
    site: Annotated[str | None, typer.Option(help="A site's slug (if there are several).")] = None,
    route_access: Annotated[
        str | None, typer.Option(help="Who may open its web address: users, owner or public.")
    ] = None,
    description: Annotated[str | None, typer.Option()] = None,
    idempotency_key: Annotated[
        str | None,
        typer.Option(
            envvar="PORTALCTL_IDEMPOTENCY_KEY",
            help="Sent as Idempotency-Key (default: a new one per run): the same key again "
            "gets the same container and job, never a second one.",
        ),
    ] = None,
    wait: WaitOpt = False,
    json_: JsonOpt = False,
) -> None:
    """Create a container from a template (--wait: until it runs)."""
    body: dict[str, Any] = {
        "hostname": name,
        "template": template,
        "site": site,
        "cores": cores,
        "memory_mib": size_mib(memory, "--memory"),
        "swap_mib": size_mib(swap, "--swap"),
        "disk_gib": size_gib(disk, "--disk"),
        "ssh_public_keys": _ssh_keys(ssh_key, ssh_key_from_profile) or None,
        "route_access": route_access,
        "description": description,
    }
    body = {k: v for k, v in body.items() if v is not None}
    key = idempotency_key or str(uuid.uuid4())
    # The key makes a retry safe: the portal answers a repeat with the first job.
    accepted = SESSION.api().post("containers/", body, headers={"Idempotency-Key": key}, retry=True)
    finish(accepted, wait=wait, json_=json_, verb="Creating")
