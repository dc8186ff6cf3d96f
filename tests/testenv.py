"""Environment for the test run, loaded as a pytest plugin before Django reads its settings.

The same values are passed to the worker processes the tests start, so both sides
of a job agree on leases, retries and polling.
"""

from __future__ import annotations

import os
import tempfile

TEST_ENV = {
    "SECRET_KEY": "test-secret-key-not-for-production",
    "FIELD_ENCRYPTION_KEYS": "Zm9yLXRlc3RzLW9ubHktMzItYnl0ZXMta2V5LWhlcmU=",
    "DEBUG": "false",
    "SECURE_SSL_REDIRECT": "false",
    "SESSION_COOKIE_SECURE": "false",
    "CSRF_COOKIE_SECURE": "false",
    "JOB_LEASE_SECONDS": "3",
    "JOB_RETRY_BACKOFF": "0.2",
    "JOB_RETRY_BACKOFF_MAX": "1",
    "JOB_MAX_ATTEMPTS": "4",
    "NODE_PROBE_INTERVAL": "0.5",
    "NODE_DOWN_WAIT_MAX": "4",
    "PROXMOX_TASK_POLL_INTERVAL": "0.05",
    "PROXMOX_TIMEOUT": "5",
    "CELERY_VISIBILITY_TIMEOUT": "30",
    "LOG_LEVEL": "WARNING",
    # Jobs run in the test process have no gateway worker; the workers the tests start
    # wait for the gateway as in production (tests/conftest.py: worker_env).
    "GATEWAY_JOB_WAIT": "false",
    # No default quota in tests (tests that create many containers per user); the quota
    # tests in tests/unit/accounts set their own policies.
    **{
        f"QUOTA_DEFAULT_{name}": ""
        for name in (
            "CONTAINERS",
            "CORES",
            "MEMORY_MIB",
            "SWAP_MIB",
            "DISK_GIB",
            "CONTAINER_CORES",
            "CONTAINER_MEMORY_MIB",
            "CONTAINER_SWAP_MIB",
            "CONTAINER_DISK_GIB",
            "ROUTES",
            "PORTS",
            "CONTAINER_ROUTES",
            "CONTAINER_PORTS",
        )
    },
}

# A test database file of this run's own, so that runs side by side never share one
# (the worker processes a run starts are told its name through DATABASE_URL).
TEST_ENV["TEST_SQLITE_NAME"] = os.path.join(
    tempfile.gettempdir(), f"cluster-portal-test-{os.getpid()}.sqlite3"
)
# The deploy key and pushed sources (LaunchPad): one private directory per test run, shared
# by the test process and its workers (tests/conftest.py removes it at the end).
DEPLOY_DIR = os.path.join(tempfile.gettempdir(), f"cluster-portal-test-{os.getpid()}-deploy")
TEST_ENV["DEPLOY_KEY_DIR"] = os.path.join(DEPLOY_DIR, "key")
TEST_ENV["DEPLOY_SOURCE_DIR"] = os.path.join(DEPLOY_DIR, "sources")
TEST_ENV["DEPLOY_HEALTH_SECONDS"] = "5"
# Notifications (docs/notifications.md): workers keep mail in memory, may post to a
# loopback receiver over http, and retry quickly.
TEST_ENV["EMAIL_BACKEND"] = "django.core.mail.backends.locmem.EmailBackend"
TEST_ENV["NOTIFY_WEBHOOK_HTTP_HOSTS"] = "127.0.0.1"
TEST_ENV["NOTIFY_RETRY_BACKOFF"] = "0.2"
TEST_ENV["NOTIFY_RETRY_BACKOFF_MAX"] = "1"
TEST_ENV["NOTIFY_MAX_RETRIES"] = "3"
TEST_ENV["DEPLOY_SSH_WAIT_SECONDS"] = "30"

# This process's own paths always win: a pytest-xdist worker inherits the environment of the
# process that started it, and must not share that one's database file or deploy directory.
PER_PROCESS = ("TEST_SQLITE_NAME", "DEPLOY_KEY_DIR", "DEPLOY_SOURCE_DIR")

for key, value in TEST_ENV.items():
    if key in PER_PROCESS:
        os.environ[key] = value
    else:
        os.environ.setdefault(key, value)
