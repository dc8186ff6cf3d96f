"""``python -m pvesim``: serve a simulated Proxmox VE cluster over HTTPS."""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading
from pathlib import Path
from types import FrameType

from pvesim.config import (
    ConfigError,
    SimConfig,
    parse_bridge,
    parse_bytes,
    parse_realm,
    parse_token,
    parse_user,
)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="pvesim", description="Proxmox VE 9 API simulator (HTTPS, loopback)."
    )
    p.add_argument(
        "--listen", default="127.0.0.1:8006", help="HOST:PORT to serve on; port 0 picks a free port"
    )
    p.add_argument("--nodes", default="pve1,pve2", help="comma-separated node names")
    p.add_argument("--state-dir", required=True, type=Path, help="where state.json and tls/ live")
    p.add_argument(
        "--token",
        action="append",
        default=[],
        metavar="USER@REALM!NAME=SECRET[:ROLE]",
        help="an API token; admin unless a role is given (repeatable)",
    )
    p.add_argument(
        "--user",
        action="append",
        default=[],
        metavar="USER@REALM:PASSWORD",
        help="a user who can log in with a ticket; admin (repeatable)",
    )
    p.add_argument(
        "--realm",
        action="append",
        default=[],
        metavar="NAME:TYPE[:COMMENT]",
        help="an extra auth realm, e.g. ldap:ldap (pam, pve and ldap exist by default)",
    )
    p.add_argument("--task-seconds", type=float, default=1.0, help="how long each worker task runs")
    p.add_argument(
        "--dhcp-hosts", type=Path, help="dnsmasq dhcp-hostsfile with MAC,IP[,name] reservations"
    )
    p.add_argument(
        "--auth-delay", type=float, default=3.0, help="delay of every 401 answer (Proxmox: 3)"
    )
    p.add_argument(
        "--lock-timeout", type=float, default=10.0, help="config flock wait (Proxmox: 10)"
    )
    p.add_argument(
        "--bridge",
        action="append",
        default=[],
        metavar="NAME=FIRST-LAST/PREFIX[,GW]",
        help="DHCP range of a bridge (default vmbr0=10.15.0.10-10.15.254.254/16,10.15.0.1)",
    )
    p.add_argument("--node-cpus", type=int, default=16)
    p.add_argument("--node-memory", default="64G", help="memory per node, e.g. 64G")
    p.add_argument("--node-storage", default="512G", help="size of local-lvm per node, e.g. 512G")
    p.add_argument(
        "--guest-emulation",
        action="store_true",
        help="a running CT whose address is on loopback gets a real OpenSSH server",
    )
    p.add_argument(
        "--guest-user",
        default="nobody",
        metavar="USER|UID[:GID]",
        help="the unprivileged host user a CT's root is, when run as root (default nobody)",
    )
    p.add_argument(
        "--guest-dir",
        type=Path,
        metavar="DIR",
        help="where the CTs' directories live (default STATE/guests); the CTs' user must be "
        "able to search every directory above it",
    )
    p.add_argument("--cluster-name", default="pvesim")
    p.add_argument("--access-log", action="store_true", help="log every request to stderr")
    p.add_argument("-v", "--verbose", action="store_true")
    return p


def parse_listen(text: str) -> tuple[str, int]:
    host, sep, port = text.rpartition(":")
    if not sep or not port.isdigit():
        raise ConfigError(f"invalid --listen {text!r}; expected HOST:PORT")
    return host.strip("[]") or "127.0.0.1", int(port)


def config_from_args(args: argparse.Namespace) -> SimConfig:
    host, port = parse_listen(args.listen)
    return SimConfig(
        state_dir=args.state_dir,
        nodes=tuple(n.strip() for n in args.nodes.split(",") if n.strip()),
        host=host,
        port=port,
        tokens=[parse_token(t) for t in args.token],
        users=[parse_user(u) for u in args.user],
        realms=[parse_realm(r) for r in args.realm],
        task_seconds=args.task_seconds,
        dhcp_hosts=args.dhcp_hosts,
        auth_delay=args.auth_delay,
        lock_timeout=args.lock_timeout,
        bridges=[parse_bridge(b) for b in args.bridge],
        node_cpus=args.node_cpus,
        node_memory=parse_bytes(args.node_memory),
        node_storage=parse_bytes(args.node_storage),
        cluster_name=args.cluster_name,
        access_log=args.access_log,
        guest_emulation=args.guest_emulation,
        guest_user=args.guest_user,
        guest_dir=args.guest_dir,
    )


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.WARNING,
        format="%(asctime)s pvesim %(levelname)s %(message)s",
        stream=sys.stderr,
    )
    if args.access_log:
        logging.getLogger("pvesim.access").setLevel(logging.INFO)
    # Why a CT has no SSH server is worth a line in the log even without -v.
    logging.getLogger("pvesim.guests").setLevel(logging.DEBUG if args.verbose else logging.INFO)
    try:
        config = config_from_args(args)
    except ConfigError as exc:
        print(f"pvesim: {exc}", file=sys.stderr)
        return 2

    from pvesim.server import SimServer

    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    try:
        server = SimServer(config)
    except (OSError, SystemExit) as exc:
        print(f"pvesim: cannot listen on {args.listen}: {exc}", file=sys.stderr)
        return 1
    except ConfigError as exc:
        print(f"pvesim: {exc}", file=sys.stderr)
        return 2
    server.start()
    print(f"pvesim ready on {server.url}", flush=True)
    while not stop.wait(0.2):
        pass
    server.stop()
    return 0
