"""gunicorn configuration for the portal in production: `gunicorn -c deploy/gunicorn.conf.py portal.wsgi`.

Threaded workers (gthread): a job's event stream holds one thread, not a whole process,
and the portal lets streams take at most EVENT_STREAM_MAX_PER_PROCESS threads of each
process (default: half of WEB_THREADS), so the other threads always serve ordinary
requests and /healthz. Streams end after EVENT_STREAM_MAX_SECONDS and the browser
resumes them. Every knob is an environment variable (listed in .env.example).
"""

from __future__ import annotations

import multiprocessing
import os


def _int(name: str, default: int) -> int:
    raw = os.environ.get(name, "").strip()
    return int(raw) if raw else default


bind = os.environ.get("WEB_BIND", "127.0.0.1:8000").split(",")
worker_class = "gthread"
workers = _int("WEB_CONCURRENCY", min(2 * multiprocessing.cpu_count() + 1, 8))
threads = _int("WEB_THREADS", 8)
# The portal's settings read WEB_THREADS to size the stream share of each process: make
# sure they see the number the workers really have.
os.environ["WEB_THREADS"] = str(threads)
# gthread: how often a worker must show it is alive (not a per-request limit, so an
# open stream is never cut by it); a hung worker is replaced after this long.
timeout = _int("WEB_TIMEOUT", 30)
# On reload or stop, open streams get this long to end; the browser then resumes.
graceful_timeout = _int("WEB_GRACEFUL_TIMEOUT", 30)
keepalive = _int("WEB_KEEPALIVE", 5)
# Recycle workers now and then (memory), staggered so they never restart together.
max_requests = _int("WEB_MAX_REQUESTS", 5000)
max_requests_jitter = max_requests // 10
# Behind NGINX on the same host: trust its X-Forwarded-* only from loopback.
forwarded_allow_ips = os.environ.get("WEB_FORWARDED_ALLOW_IPS", "127.0.0.1,::1")
accesslog = os.environ.get("WEB_ACCESS_LOG", "-") or None
errorlog = "-"
loglevel = os.environ.get("WEB_LOG_LEVEL", "info")
proc_name = "cluster-portal-web"
# gunicorn >= 25 opens a control socket under $HOME by default; the portal does not use it
# (systemd sends HUP and TERM), and two servers on a host would share the one path.
control_socket_disable = True
