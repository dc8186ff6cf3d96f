"""Guest emulation, without a CT or a server: the stand-ins' argument handling, the apt
record, record-only package services, paths inside a CT, the sshd config, and the rule
that what runs inside a CT needs nothing but the standard library."""

from __future__ import annotations

import ast
import io
import os
import sys
import zipfile
from pathlib import Path

import pytest

from pvesim.config import ConfigError
from pvesim.guestos import apt, journal, systemctl
from pvesim.guestos.layout import Layout
from pvesim.guestos.service import ServiceManager
from pvesim.guests import sshd
from pvesim.guests.pack import GUESTOS, guestos_pyz
from pvesim.guests.session import session_env


def test_systemctl_arguments() -> None:
    args = systemctl.parse_args(["--no-pager", "enable", "--now", "app", "redis-server.service"])
    assert (args.verb, args.units, args.now) == (
        "enable",
        ["app.service", "redis-server.service"],
        True,
    )
    args = systemctl.parse_args(["-q", "is-active", "--type", "service", "app"])
    assert (args.verb, args.units, args.quiet) == ("is-active", ["app.service"], True)
    assert systemctl.parse_args(["status", "app", "-n", "5", "-l"]).lines == 5
    assert systemctl.parse_args(["status", "app", "--lines=0"]).lines == 0
    assert systemctl.parse_args(["--version"]).version


def test_apt_arguments() -> None:
    argv = ["-qq", "-o", "Dpkg::Options::=--force-confold", "install", "-y"]
    argv += ["--no-install-recommends", "postgresql", "nginx=1.22.1-9", "redis-server/bookworm"]
    args = apt.parse_apt_args(argv)
    assert args.command == "install" and args.assume_yes and args.quiet == 2
    assert args.packages == ["postgresql", "nginx", "redis-server"]
    assert apt.parse_apt_args(["-qy", "update"]).assume_yes
    assert apt.parse_apt_args(["install", "--simulate", "git"]).simulate


def test_journalctl_arguments() -> None:
    args = journal.parse_args(["-u", "app", "--unit=worker", "-uredis-server", "-f", "-n", "20"])
    assert args.units == ["app.service", "worker.service", "redis-server.service"]
    assert args.follow and args.lines == 20
    assert journal.parse_args(["-u", "app", "-n"]).lines == 10
    assert journal.parse_args(["-xeu", "app"]).lines is None  # -xeu: not parsed as a unit
    assert journal.parse_args(["-u", "app", "-e"]).lines == 1000
    assert journal.parse_args(["-b", "-u", "app", "--no-pager"]).units == ["app.service"]


def test_apt_records_and_package_services_are_record_only(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    layout = Layout(tmp_path)
    assert apt.apt_main(["install", "-y", "redis-server", "git"], layout) == 0
    out = capsys.readouterr().out
    assert "Setting up redis-server (5:7.0.15-1~deb12u5) ..." in out
    assert "0 upgraded, 2 newly installed" in out
    status = apt.read_status(layout)
    assert set(status) == {"redis-server", "git"}
    assert status["git"]["Status"] == "install ok installed"
    manager = ServiceManager(layout)
    # Debian starts a service on install: enabled and active, with no process behind it.
    assert manager.state("redis-server.service") == "active"
    assert manager.main_pid("redis-server.service") is None
    found = manager.find("redis.service")  # the alias
    assert found is not None and found.name == "redis-server.service" and manager.enabled(found)
    assert apt.apt_main(["install", "-y", "git"], layout) == 0
    assert "git is already the newest version" in capsys.readouterr().out
    assert apt.dpkg_main(["-s", "git"], layout) == 0
    assert apt.dpkg_main(["-W", "-f=${Status}", "git"], layout) == 0
    assert capsys.readouterr().out.endswith("install ok installed")
    assert apt.dpkg_main(["-s", "nginx"], layout) == 1
    assert apt.apt_main(["purge", "-y", "redis-server"], layout) == 0
    assert manager.state("redis-server.service") == "inactive"
    assert apt.apt_main(["frobnicate"], layout) == 100


def test_systemctl_on_record_only_units(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    layout = Layout(tmp_path)
    apt.apt_main(["install", "-y", "postgresql"], layout)
    capsys.readouterr()
    assert systemctl.main(["stop", "postgresql"], layout) == 0
    assert systemctl.main(["is-active", "postgresql"], layout) == 3
    assert systemctl.main(["enable", "--now", "postgresql"], layout) == 0
    assert systemctl.main(["is-active", "postgresql"], layout) == 0
    assert systemctl.main(["status", "postgresql"], layout) == 0
    out = capsys.readouterr().out
    assert "inactive\nactive\n" in out and "Loaded: loaded (/usr/lib/systemd/system/" in out
    assert systemctl.main(["start", "nope"], layout) == 5
    assert "Unit nope.service not found." in capsys.readouterr().err
    assert systemctl.main(["frob", "x"], layout) == 1


def test_paths_inside_the_ct(tmp_path: Path) -> None:
    layout = Layout(tmp_path)
    (tmp_path / "srv" / "app").mkdir(parents=True)
    assert layout.inside("/srv/app") == tmp_path / "srv" / "app"
    assert layout.inside("/etc/cluster-portal/app.env") == tmp_path / "etc/cluster-portal/app.env"
    assert layout.inside("/bin/sh") == Path("/bin/sh")  # the host's, the CT has none
    assert layout.inside("relative") == tmp_path / "relative"
    assert layout.inside(str(tmp_path / "x")) == tmp_path / "x"
    assert layout.display(tmp_path / "etc" / "hostname") == "/etc/hostname"


def test_a_session_sees_what_the_units_see() -> None:
    env = session_env("/state/guests/105", "105", {"TERM": "xterm", "HOME": "/root", "X": "1"})
    base = Layout("/state/guests/105").env()
    assert {k: env[k] for k in base} == base
    assert env["TERM"] == "xterm" and "X" not in env and env["PVESIM_VMID"] == "105"


def test_the_sshd_config_allows_the_cts_keys_only(tmp_path: Path) -> None:
    account = sshd.Account(65534, 65534, "nobody", "root", drop=True)
    text = sshd.render_config(
        ip="127.15.0.9", private=tmp_path / "p", ct_dir=tmp_path / "ct", account=account, vmid=9
    )
    lines = set(text.splitlines())
    assert "ListenAddress 127.15.0.9:22" in lines
    assert f"AuthorizedKeysFile {tmp_path}/ct/.ssh/authorized_keys" in lines
    for line in ("PasswordAuthentication no", "KbdInteractiveAuthentication no"):
        assert line in lines
    assert {"DisableForwarding yes", "AllowUsers root", "PermitUserRC no"} <= lines
    force = next(x for x in lines if x.startswith("ForceCommand "))
    assert force.endswith(f"session.py {tmp_path}/ct 65534 65534 9")


def test_unreachable_names_the_directory_in_the_way(tmp_path: Path) -> None:
    nobody = sshd.Account(65534, 65534, "nobody", "root", drop=True)
    (tmp_path / "closed" / "ct").mkdir(parents=True)
    (tmp_path / "closed").chmod(0o700)
    # pytest's own tmp is under a 0700 directory: the first such directory is named
    path = [*reversed(tmp_path.parents), tmp_path, tmp_path / "closed"]
    parent = next(p for p in path if p.stat().st_mode & 0o001 == 0)
    reason = sshd.unreachable(tmp_path / "closed" / "ct", nobody)
    assert reason is not None and reason.startswith(f"{parent} (mode 0")


def test_what_runs_inside_a_ct_imports_only_the_standard_library() -> None:
    for path in GUESTOS.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.level == 0:
                names = [node.module or ""]
            elif isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            else:
                continue
            for name in names:
                top = name.split(".")[0]
                assert top in sys.stdlib_module_names, f"{path.name} imports {name}"
    with zipfile.ZipFile(io.BytesIO(guestos_pyz())) as zf:
        names = set(zf.namelist())
    assert "__main__.py" in names
    assert {f"guestos/{p.name}" for p in GUESTOS.glob("*.py")} <= names


def test_the_cts_user() -> None:
    if os.geteuid() != 0:
        me = sshd.resolve_account("nobody")  # without root: the current user, no drop
        assert (me.uid, me.drop) == (os.geteuid(), False)
        return
    nobody = sshd.resolve_account("nobody")
    assert nobody.uid != 0 and nobody.login == "root" and nobody.drop
    numeric = sshd.resolve_account("4242:4343")
    assert (numeric.uid, numeric.gid) == (4242, 4343)
    for spec in ("0", "root", "no-such-user-here"):
        with pytest.raises(ConfigError, match="--guest-user"):
            sshd.resolve_account(spec)
