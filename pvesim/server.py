"""HTTPS serving with cheroot, plus the scheduler thread that runs tasks.

cheroot (CherryPy's WSGI server) sends the WSGI status line as given, so Proxmox's
message reaches the client as the HTTP reason phrase, and it keeps connections
alive between requests, as pveproxy does (werkzeug's server closes every one).
"""

from __future__ import annotations

import logging
import ssl
import threading

from cheroot import wsgi
from cheroot.ssl.builtin import BuiltinSSLAdapter

from pvesim.app import PveApp
from pvesim.config import SimConfig
from pvesim.guests.manager import GuestEmulator
from pvesim.state import SimState
from pvesim.tls import TlsFiles, ensure_tls

log = logging.getLogger("pvesim")
access_log = logging.getLogger("pvesim.access")

TICK_SECONDS = 0.02


class SimServer:
    """One simulator: state, TLS files, the HTTPS server and the task ticker."""

    def __init__(self, config: SimConfig, state: SimState | None = None) -> None:
        self.config = config
        self.tls: TlsFiles = ensure_tls(config.state_dir, config.host, tuple(config.nodes))
        self.state = state or SimState(config)
        self.state.ssl_fingerprint = self.tls.fingerprint()  # type: ignore[attr-defined]
        self.app = PveApp(self.state, self.tls)
        self.guests: GuestEmulator | None = None
        if config.guest_emulation:
            self.guests = GuestEmulator(self.state, config.guest_user, config.guest_dir)
            self.state.guest_emulator = self.guests
            self.state.on_change = self.guests.wake
        self.httpd = wsgi.Server(
            (config.host, config.port),
            self.app,
            numthreads=32,
            max=64,
            server_name="pve-api-daemon/3.0",
            timeout=60,
            shutdown_timeout=2,
            request_queue_size=128,
        )
        self.httpd.version = "pve-api-daemon/3.0"  # the Server header pveproxy sends
        # cheroot keeps only 10 idle connections alive and closes the rest after each
        # response; pveproxy keeps every client's connection (up to its connection limit),
        # so a portal with a pool per worker thread would otherwise reconnect all the time.
        self.httpd.keep_alive_conn_limit = 512
        self.httpd.ssl_adapter = BuiltinSSLAdapter(str(self.tls.cert), str(self.tls.key))
        # The serve loop wakes this often to notice stop(); 0.5 s (the default) slows every stop.
        self.httpd.expiration_interval = 0.05
        self.httpd.prepare()  # binds now, so that port 0 has its real port before start()
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []

    @property
    def host(self) -> str:
        return self.config.host

    @property
    def port(self) -> int:
        return int(self.httpd.bind_addr[1])

    @property
    def url(self) -> str:
        host = self.config.host
        if ":" in host:
            host = f"[{host}]"
        return f"https://{host}:{self.port}"

    def start(self) -> None:
        serve = threading.Thread(
            target=self.httpd.serve,
            name="pvesim-http",
            daemon=True,
        )
        tick = threading.Thread(target=self._ticker, name="pvesim-tasks", daemon=True)
        self._threads = [serve, tick]
        serve.start()
        tick.start()
        if self.guests is not None:
            self.guests.start()

    def _ticker(self) -> None:
        while not self._stop.wait(TICK_SECONDS):
            try:
                self.state.tick()
                self.state.flush_due()
            except Exception:
                log.exception("task scheduler failed")

    def serve_forever(self) -> None:
        """Run until :meth:`stop` is called from another thread or a signal."""
        self.start()
        self._stop.wait()

    def stop(self) -> None:
        self._stop.set()
        self.httpd.stop()
        for thread in self._threads:
            if thread is not threading.current_thread():
                thread.join(timeout=5)
        self.state.tick()
        if self.guests is not None:
            self.state.on_change = None
            self.guests.shutdown()
        self.state.save()

    def ssl_client_context(self) -> ssl.SSLContext:
        return ssl.create_default_context(cafile=str(self.tls.ca))
