"""A private gateway on this machine: the demo, the tests, the bench."""

from __future__ import annotations

import os
import pwd
from pathlib import Path
from typing import Any

from django.conf import settings

from portal.gateway_defaults import GATEWAY_DEFAULTS, LOCAL_STREAM_SHARDS
from portal.procs import find_binary, free_port, free_ports

from ..render import GatewayOptions
from .apply import install_bootstrap
from .paths import GatewayPaths
from .servers import Dnsmasq, Nginx


def _invoking_user() -> str:
    """The user nginx's and dnsmasq's workers run as in a private gateway.

    Started as root, both drop their workers to `nobody`, who cannot walk into a
    checkout under a 0700 directory (root's home, any `mktemp -d`): names did not
    resolve and nginx's own error pages answered 403. Keeping the invoking user is the
    simplest fix that needs no directory widened; it binds loopback high ports only.
    Started as anyone else, no switch happens and none is asked for.
    """
    return pwd.getpwuid(os.geteuid()).pw_name if os.geteuid() == 0 else ""


class LocalGateway:
    """nginx and dnsmasq on loopback high ports in a private directory, with a test certificate.

    `settings` holds the gateway settings it chose (typed), `env` the same as environment
    variables for the worker processes. Servers are started daemonised, each from a
    configuration rendered for the ports chosen now, and stopped by the PIDs in their
    pid files; a start that fails stops what it started.
    """

    def __init__(
        self,
        root: Path,
        *,
        domains: list[str],
        stream_bind: str = GATEWAY_DEFAULTS.stream_bind,
        nginx: bool = True,
        dnsmasq: bool = True,
        ports: dict[str, int] | None = None,
        stream_shards: int = LOCAL_STREAM_SHARDS,
        **overrides: Any,
    ) -> None:
        self.root = root
        ports = ports or {}
        port = {k: ports.get(k) or free_port() for k in ("http", "https", "dns")}
        # The status port, and one after it for each stream shard.
        port["status"] = ports.get("status") or free_ports(1 + stream_shards)
        self.ports = port
        self.tls_dir = root / "tls"
        self.settings: dict[str, Any] = {
            "GATEWAY_DIR": str(root / "gw"),
            "GATEWAY_NGINX_ENABLED": nginx and find_binary("nginx") is not None,
            "GATEWAY_DNSMASQ_ENABLED": dnsmasq and find_binary("dnsmasq") is not None,
            "GATEWAY_HTTP_LISTEN": [f"127.0.0.1:{port['http']}"],
            "GATEWAY_HTTPS_LISTEN": [f"127.0.0.1:{port['https']}"],
            "GATEWAY_STATUS_LISTEN": f"127.0.0.1:{port['status']}",
            "GATEWAY_STREAM_BIND": stream_bind,
            "GATEWAY_STREAM_SHARDS": stream_shards,
            "GATEWAY_DNS_LISTEN": list(GATEWAY_DEFAULTS.dns_listen),
            "GATEWAY_DNS_PORT": port["dns"],
            "GATEWAY_DHCP_ENABLED": GATEWAY_DEFAULTS.dhcp_enabled,
            "GATEWAY_TLS_CERTIFICATE": str(self.tls_dir / "fullchain.pem"),
            "GATEWAY_TLS_CERTIFICATE_KEY": str(self.tls_dir / "privkey.pem"),
            "GATEWAY_NGINX_PID_FILE": GATEWAY_DEFAULTS.nginx_pid_file,
            "GATEWAY_DNSMASQ_PID_FILE": GATEWAY_DEFAULTS.dnsmasq_pid_file,
            "GATEWAY_NGINX_RELOAD_COMMAND": GATEWAY_DEFAULTS.nginx_reload_command,
            "GATEWAY_DNSMASQ_RELOAD_COMMAND": GATEWAY_DEFAULTS.dnsmasq_reload_command,
            "GATEWAY_DNSMASQ_RESTART_COMMAND": GATEWAY_DEFAULTS.dnsmasq_restart_command,
            "GATEWAY_WORKER_USER": _invoking_user(),
            **overrides,
        }
        self.domains = domains
        self.started = False

    @property
    def env(self) -> dict[str, str]:
        def text(v: Any) -> str:
            if isinstance(v, bool):
                return "true" if v else "false"
            return ",".join(v) if isinstance(v, list) else str(v)

        return {k: text(v) for k, v in self.settings.items()}

    @property
    def ca(self) -> Path:
        return self.tls_dir / "ca.pem"

    def apply_settings(self) -> None:
        """Make this process use the private gateway (workers get `env`)."""
        for key, value in self.settings.items():
            setattr(settings, key, value)

    def paths(self) -> GatewayPaths:
        return GatewayPaths.from_settings(Path(self.settings["GATEWAY_DIR"]))

    def servers(self) -> list[Nginx | Dnsmasq]:
        """Every nginx (the HTTP one, then the stream shards) and dnsmasq."""
        paths = self.paths()
        options = GatewayOptions.from_settings(paths.root)
        return [*Nginx.every(paths, options), Dnsmasq(paths, options)]

    def pids(self) -> dict[str, int]:
        """The PIDs of the servers running now ("nginx", "stream-<i>": masters; "dnsmasq")."""
        found = {server.name: server.pid() for server in self.servers()}
        return {name: pid for name, pid in found.items() if pid}

    def start(self) -> LocalGateway:
        from ..tls import make_wildcard_certificate

        self.root.mkdir(parents=True, exist_ok=True)
        if not (self.tls_dir / "fullchain.pem").exists():
            make_wildcard_certificate(self.tls_dir, self.domains)
        self.apply_settings()
        paths = self.paths()
        options = GatewayOptions.from_settings(paths.root)
        install_bootstrap(paths, options, fresh=True)
        try:
            if settings.GATEWAY_NGINX_ENABLED:
                for nginx in Nginx.every(paths, options):
                    nginx.start()
            if settings.GATEWAY_DNSMASQ_ENABLED:
                Dnsmasq(paths, options).start()
        except BaseException:
            self.stop()
            raise
        self.started = True
        return self

    def stop(self) -> None:
        for server in self.servers():
            server.stop()
        self.started = False
