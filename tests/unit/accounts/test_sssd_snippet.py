"""The SSSD snippet a container template uses names the same group the portal writes."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

from auth.directory import Directory, DirectoryConfig

SNIPPET = Path(__file__).resolve().parents[3] / "deploy" / "sssd"


def test_first_boot_limits_login_and_sudo_to_the_portals_group(tmp_path, settings) -> None:
    root = tmp_path / "ct"
    (root / "etc" / "sssd").mkdir(parents=True)
    (root / "etc" / "sudoers.d").mkdir(parents=True)
    shutil.copy(SNIPPET / "sssd.conf.in", root / "etc" / "sssd" / "sssd.conf.in")
    shutil.copy(SNIPPET / "sudoers.in", root / "etc" / "sudoers.d" / "portal-access.in")
    done = subprocess.run(
        ["sh", str(SNIPPET / "portal-access-setup.sh")],
        env={
            "PATH": "/usr/sbin:/usr/bin:/sbin:/bin",
            "PORTAL_HOSTNAME": "web",
            "PORTAL_ACCESS_ROOT": str(root),
        },
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert done.returncode == 0, done.stderr
    settings.AUTH_LDAP_SERVER_URI = "ldap://127.0.0.1:1"
    group = Directory(DirectoryConfig.from_settings()).group_name("web")
    assert group == "ct-web"
    conf = (root / "etc" / "sssd" / "sssd.conf").read_text()
    assert f"simple_allow_groups = {group}\n" in conf and "@GROUP@" not in conf
    assert f"(cn={group})" in conf
    assert (root / "etc" / "sssd" / "sssd.conf").stat().st_mode & 0o777 == 0o600
    sudoers = (root / "etc" / "sudoers.d" / "portal-access").read_text()
    assert f"%{group} ALL=(ALL:ALL) ALL" in sudoers
    assert (root / "etc" / "sudoers.d" / "portal-access").stat().st_mode & 0o777 == 0o440


def test_a_strange_hostname_is_refused(tmp_path) -> None:
    done = subprocess.run(
        ["sh", str(SNIPPET / "portal-access-setup.sh")],
        env={
            "PATH": "/usr/bin:/bin",
            "PORTAL_HOSTNAME": "x;rm",
            "PORTAL_ACCESS_ROOT": str(tmp_path),
        },
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert done.returncode == 1 and "unexpected group name" in done.stderr
