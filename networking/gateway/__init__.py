"""Applying a site's gateway files on the gateway host: stage, validate, swap, reload.

The live tree under GATEWAY_DIR::

    current -> releases/<generation>-<hash>     one symlink: the swap is one rename
    nginx   -> current/nginx                    what nginx -c and dnsmasq read
    dnsmasq -> current/dnsmasq
    releases/  staging/                         the last few releases; work in progress
    run/       pid files, logs, nginx temp dirs, the apply lock (never swapped)
    acme/      the ACME HTTP-01 webroot

An apply holds a file lock (so one runs at a time on the host), reads the site's
generation counter, renders the database, and stops early when nothing changed. It
validates a staged copy with the real `nginx -t` and `dnsmasq --test`; an error that
points at one entry leaves that entry out and tries again, anything else keeps the
live files. After the swap nginx gets SIGHUP and is asked, on its loopback status
server, which revision it serves; a new port that cannot be bound leaves its mapping
out. dnsmasq gets SIGHUP for hosts and reservations, a restart for its main file.
Every apply is recorded as a ConfigRevision.

The modules: `paths` (the tree above, the swap, the lock), `servers` (nginx and dnsmasq:
validate, reload, start, stop), `checks` (what a validator blames, ports in use, the
reload after a swap), `apply` (the sequence above) and `local` (a private gateway for the
demo, the tests, the bench). Asking for an apply and waiting for one are below this layer,
in networking/services.py, so a job can do both without importing the gateway.
"""

from __future__ import annotations

# The names the rest of the code, the tests and the benches import from here.
from portal.procs import find_binary

from .apply import ApplyOutcome, apply_site, install_bootstrap, render_to_directory
from .local import LocalGateway
from .paths import GatewayPaths, write_tree
from .servers import Dnsmasq, Nginx, dnsmasq_test, nginx_test

__all__ = [
    "ApplyOutcome",
    "Dnsmasq",
    "GatewayPaths",
    "LocalGateway",
    "Nginx",
    "apply_site",
    "dnsmasq_test",
    "find_binary",
    "install_bootstrap",
    "nginx_test",
    "render_to_directory",
    "write_tree",
]
