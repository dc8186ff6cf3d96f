"""HTTPS serving with werkzeug, plus the scheduler thread that runs tasks."""

from __future__ import annotations

import logging
import ssl
import threading
from typing import Any

from werkzeug.serving import BaseWSGIServer, WSGIRequestHandler, make_server

from pvesim.app import PveApp
from pvesim.config import SimConfig
from pvesim.state import SimState
from pvesim.tls import TlsFiles, ensure_tls

log = logging.getLogger("pvesim")
access_log = logging.getLogger("pvesim.access")

TICK_SECONDS = 0.02


class PveRequestHandler(WSGIRequestHandler):
    """Quiet by default, and named like pveproxy."""

    # A stuck client must not keep a handler thread forever.
    timeout = 60
    # Headers and body go out in separate writes; without this, Nagle plus
    # delayed ACKs add milliseconds to every call.
    disable_nagle_algorithm = True

    def version_string(self) -> str:
        return "pve-api-daemon/3.0"

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        if access_log.isEnabledFor(logging.INFO):
            access_log.info('%s "%s" %s %s', self.address_string(), self.requestline, code, size)

    def log_error(self, format: str, *args: Any) -> None:
        log.debug("http: " + format, *args)

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("http: " + format, *args)

    def log(self, type: str, message: str, *args: Any) -> None:
        log.debug("http %s: " + message, type, *args)


class SimServer:
    """One simulator: state, TLS files, the HTTPS server and the task ticker."""

    def __init__(self, config: SimConfig, state: SimState | None = None) -> None:
        self.config = config
        self.tls: TlsFiles = ensure_tls(config.state_dir, config.host, tuple(config.nodes))
        self.state = state or SimState(config)
        self.state.ssl_fingerprint = self.tls.fingerprint()  # type: ignore[attr-defined]
        self.app = PveApp(self.state, self.tls)
        self.httpd: BaseWSGIServer = make_server(
            config.host, config.port, self.app, threaded=True, request_handler=PveRequestHandler
        )
        # TLS is wrapped here rather than via make_server(ssl_context=...), so
        # the handshake runs in the handler thread (do_handshake_on_connect
        # False): a client that connects and stalls cannot block accept().
        ctx = self.tls.server_context()
        self.httpd.socket = ctx.wrap_socket(
            self.httpd.socket, server_side=True, do_handshake_on_connect=False
        )
        self.httpd.ssl_context = ctx
        self.httpd._server_version = "pve-api-daemon/3.0"
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []

    @property
    def host(self) -> str:
        return self.config.host

    @property
    def port(self) -> int:
        return int(self.httpd.server_port)

    @property
    def url(self) -> str:
        host = self.config.host
        if ":" in host:
            host = f"[{host}]"
        return f"https://{host}:{self.port}"

    def start(self) -> None:
        serve = threading.Thread(
            target=self.httpd.serve_forever,
            kwargs={"poll_interval": 0.02},
            name="pvesim-http",
            daemon=True,
        )
        tick = threading.Thread(target=self._ticker, name="pvesim-tasks", daemon=True)
        self._threads = [serve, tick]
        serve.start()
        tick.start()

    def _ticker(self) -> None:
        while not self._stop.wait(TICK_SECONDS):
            try:
                self.state.tick()
                self.state.flush()
            except Exception:
                log.exception("task scheduler failed")

    def serve_forever(self) -> None:
        """Run until :meth:`stop` is called from another thread or a signal."""
        self.start()
        self._stop.wait()

    def stop(self) -> None:
        self._stop.set()
        self.httpd.shutdown()
        self.httpd.server_close()
        for thread in self._threads:
            if thread is not threading.current_thread():
                thread.join(timeout=5)
        self.state.tick()
        self.state.save()

    def ssl_client_context(self) -> ssl.SSLContext:
        return ssl.create_default_context(cafile=str(self.tls.ca))
