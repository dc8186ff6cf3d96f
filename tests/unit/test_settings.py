"""Production settings pass `check --deploy`, and refuse to start without their secrets."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

BASE = Path(__file__).resolve().parents[2]


def manage(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    clean = {
        k: v for k, v in os.environ.items() if not k.isupper() or k in ("PATH", "HOME", "LANG")
    }
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=BASE,
        env={**clean, **env},
        capture_output=True,
        text=True,
        timeout=120,
    )


def production_env(tmp_path: Path) -> dict[str, str]:
    return {
        "SECRET_KEY": "x7Qv9-not-a-real-secret-but-long-and-random-enough-4f1b2c3d4e5f6a7b8c9d",
        "FIELD_ENCRYPTION_KEYS": "Zm9yLXRlc3RzLW9ubHktMzItYnl0ZXMta2V5LWhlcmU=",
        "ALLOWED_HOSTS": "portal.example.org",
        "DATABASE_URL": f"sqlite:///{tmp_path / 'deploy.sqlite3'}",
        "PORTAL_VAR_DIR": str(tmp_path),
        "CACHE_URL": "redis://127.0.0.1:6379/2",  # not connected to by `check`
    }


def test_production_settings_pass_check_deploy(tmp_path: Path) -> None:
    result = manage("check", "--deploy", "--fail-level", "WARNING", env=production_env(tmp_path))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "no issues" in result.stdout


def test_no_secret_key_no_start(tmp_path: Path) -> None:
    env = production_env(tmp_path)
    del env["SECRET_KEY"]
    result = manage("check", env=env)
    assert result.returncode != 0
    assert "SECRET_KEY is required unless DEBUG or PORTAL_DEMO is set" in result.stderr


def test_no_field_encryption_key_no_start(tmp_path: Path) -> None:
    env = production_env(tmp_path)
    del env["FIELD_ENCRYPTION_KEYS"]
    result = manage("check", env=env)
    assert result.returncode != 0 and "FIELD_ENCRYPTION_KEYS is required" in result.stderr


def test_production_cookies_are_host_prefixed_and_host_only(tmp_path: Path) -> None:
    """`__Host-` cookies: Secure, Path=/, no Domain, so no subdomain can read or plant them."""
    code = (
        "from django.conf import settings as s; print('cookies:', s.SESSION_COOKIE_NAME, s.CSRF_COOKIE_NAME,"
        " s.SESSION_COOKIE_DOMAIN, s.CSRF_COOKIE_DOMAIN, s.SESSION_COOKIE_SECURE)"
    )
    result = manage("shell", "-c", code, env=production_env(tmp_path))
    assert result.returncode == 0, result.stderr
    [line] = [ln for ln in result.stdout.splitlines() if ln.startswith("cookies: ")]
    assert line.split()[1:] == [
        "__Host-portal_session",
        "__Host-portal_csrf",
        "None",
        "None",
        "True",
    ]


def test_a_process_local_cache_is_a_deploy_warning(tmp_path: Path) -> None:
    env = production_env(tmp_path)
    del env["CACHE_URL"]
    result = manage("check", "--deploy", "--fail-level", "WARNING", env=env)
    assert result.returncode != 0 and "portal.W001" in result.stderr + result.stdout
