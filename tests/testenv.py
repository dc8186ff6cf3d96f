"""Environment for the test run, loaded as a pytest plugin before Django reads its settings.

The same values are passed to the worker processes the tests start, so both sides
of a job agree on leases, retries and polling.
"""

from __future__ import annotations

import os

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
    "PROXMOX_TASK_POLL_INTERVAL": "0.05",
    "PROXMOX_TIMEOUT": "5",
    "CELERY_VISIBILITY_TIMEOUT": "30",
    "LOG_LEVEL": "WARNING",
}

for key, value in TEST_ENV.items():
    os.environ.setdefault(key, value)
