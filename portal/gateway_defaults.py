"""The gateway's defaults, written once.

Settings read them (each overridable from the environment), `GatewayOptions` takes them
as its field defaults, and the private local gateway resets a process to them. Loopback
and high ports: right for the demo and the tests; a real gateway host sets its addresses,
certificate paths and reload commands (deploy/gateway.env). No Django import here: the
settings module reads this one.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class GatewayDefaults:
    # What the rendered files say (GatewayOptions).
    http_listen: tuple[str, ...] = ("127.0.0.1:18080",)
    https_listen: tuple[str, ...] = ("127.0.0.1:18443",)
    status_listen: str = "127.0.0.1:18099"
    stream_bind: str = "127.0.0.1"
    # The TCP/UDP port mappings are served by this many stream-only nginx instances, port
    # mod shards, beside the HTTP one, so that a create validates and reloads one small
    # shard (docs/gateway.md). Shard i answers its revision on the status port + 1 + i.
    stream_shards: int = 8
    public_https_port: int = 0  # 0: the port of the first HTTPS listen
    dns_listen: tuple[str, ...] = ("127.0.0.1",)
    dns_port: int = 15353
    dhcp_enabled: bool = False
    dhcp_lease: str = "24h"
    stream_module: str = "/usr/lib/nginx/modules/ngx_stream_module.so"
    tls_certificate: str = "/etc/letsencrypt/live/{domain}/fullchain.pem"
    tls_certificate_key: str = "/etc/letsencrypt/live/{domain}/privkey.pem"
    acme_dir: str = ""  # empty: <GATEWAY_DIR>/acme
    auth_url: str = "http://127.0.0.1:8000/gateway/auth"
    portal_url: str = "http://127.0.0.1:8000"
    portal_name: str = "Cluster Portal"
    credential_cookie: str = "__Host-portal_gw"
    client_max_body_size: str = "10g"
    proxy_timeout: int = 300
    stream_timeout: int = 3600
    worker_user: str = ""  # empty: the servers' own default (nobody)
    # How the servers are found and signalled (settings only). Empty pid files are derived
    # from GATEWAY_DIR; empty commands mean SIGHUP (or TERM and a fresh start) by PID.
    nginx_pid_file: str = ""
    dnsmasq_pid_file: str = ""
    nginx_reload_command: str = ""
    dnsmasq_reload_command: str = ""
    dnsmasq_restart_command: str = ""


GATEWAY_DEFAULTS = GatewayDefaults()

# Stream shards of a private gateway (the demo, the tests): more than one, so that every
# test crosses shards, and fewer than a gateway host's default, so that a laptop's demo
# starts few processes.
LOCAL_STREAM_SHARDS = 2


def listen_port(listen: str) -> int:
    """The port of an nginx listen ("127.0.0.1:18443 ssl", "[::]:443"); 0 when it has none."""
    _, _, port = listen.partition(" ")[0].rpartition(":")
    return int(port) if port.isdigit() else 0


def shard_status_listen(status_listen: str, shard: int) -> str:
    """Where stream shard `shard` answers its revision: the status listen's port + 1 +
    shard, on its address; empty when the status listen has no port."""
    host, _, port = status_listen.rpartition(":")
    return f"{host}:{int(port) + 1 + shard}" if port.isdigit() else ""


def public_port(public_https_port: int, https_listen: Sequence[str]) -> int:
    """The HTTPS port browsers use: the setting, else the first listen's, else 443."""
    return public_https_port or listen_port(https_listen[0] if https_listen else "") or 443
