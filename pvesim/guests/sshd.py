"""A CT's OpenSSH server: who its sessions run as, its config, its host key."""

from __future__ import annotations

import os
import pwd
import shlex
import shutil
import stat
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from pvesim.config import ConfigError

SSHD = "/usr/sbin/sshd"
SFTP_SERVERS = ("/usr/lib/openssh/sftp-server", "/usr/libexec/openssh/sftp-server")
PRIVSEP_DIR = Path("/run/sshd")  # Debian's and Ubuntu's sshd chroots its pre-auth child here
SESSION_SCRIPT = Path(__file__).with_name("session.py")


@dataclass(frozen=True)
class Account:
    """The host user a CT's "root" is: its sessions and its units run as this uid."""

    uid: int
    gid: int
    name: str  # the host name of that user (for messages)
    login: str  # the name an SSH client logs in as
    drop: bool  # True when sshd runs as root and each session drops to uid/gid


def resolve_account(spec: str) -> Account:
    """``nobody``, another user name, or ``UID[:GID]``; without root, the current user."""
    if os.geteuid() != 0:
        me = pwd.getpwuid(os.geteuid())
        return Account(me.pw_uid, me.pw_gid, me.pw_name, me.pw_name, drop=False)
    uid_s, _, gid_s = spec.partition(":")
    if uid_s.isdigit():
        uid = int(uid_s)
        try:
            entry = pwd.getpwuid(uid)
            name, default_gid = entry.pw_name, entry.pw_gid
        except KeyError:
            name, default_gid = uid_s, uid
        gid = int(gid_s) if gid_s.isdigit() else default_gid
    else:
        try:
            entry = pwd.getpwnam(uid_s)
        except KeyError:
            raise ConfigError(f"--guest-user {spec}: no such user on this host") from None
        uid, gid, name = entry.pw_uid, entry.pw_gid, entry.pw_name
        gid = int(gid_s) if gid_s.isdigit() else gid
    if uid == 0:
        raise ConfigError(f"--guest-user {spec}: the CTs' user must not be root")
    return Account(uid, gid, name, "root", drop=True)


def unreachable(path: Path, account: Account) -> str | None:
    """Why ``account`` cannot walk to ``path`` (a directory on the way it may not
    search), or None when it can."""
    for directory in [*reversed(path.parents), path]:
        try:
            st = directory.stat()
        except OSError as exc:
            return f"{directory}: {exc.strerror}"
        if st.st_uid == account.uid:
            bit = stat.S_IXUSR
        elif st.st_gid == account.gid:
            bit = stat.S_IXGRP
        else:
            bit = stat.S_IXOTH
        if not st.st_mode & bit:
            return (
                f"{directory} (mode {stat.S_IMODE(st.st_mode):04o}, owner uid {st.st_uid}) "
                f"cannot be searched by {account.name}"
            )
    return None


def sftp_server() -> str | None:
    return next((p for p in SFTP_SERVERS if os.access(p, os.X_OK)), None)


def ensure_privsep_dir() -> None:
    """sshd started as root refuses to run without its privilege separation directory
    (systemd makes it on a normal host; a container may lack it)."""
    if os.geteuid() == 0 and not PRIVSEP_DIR.exists() and PRIVSEP_DIR.parent.is_dir():
        PRIVSEP_DIR.mkdir(mode=0o755)


def ensure_host_key(path: Path, comment: str) -> None:
    """An ed25519 host key, made once per CT and kept."""
    if path.exists():
        return
    subprocess.run(
        ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", comment, "-f", str(path)],
        check=True,
        capture_output=True,
        timeout=30,
    )


def session_command(ct_dir: Path, account: Account, vmid: int) -> str:
    """The ForceCommand: every session, with or without a command, goes through
    pvesim/guests/session.py (isolated mode, standard library only)."""
    args = [
        sys.executable,
        "-I",
        str(SESSION_SCRIPT),
        str(ct_dir),
        str(account.uid),
        str(account.gid),
        str(vmid),
    ]
    return " ".join(shlex.quote(a) for a in args)


def render_config(
    *, ip: str, private: Path, ct_dir: Path, account: Account, vmid: int, port: int = 22
) -> str:
    """sshd_config for one CT: its address only, its host key, the CT's own
    authorized_keys, public keys only, no forwarding, every session forced through the
    privilege-dropping wrapper."""
    lines = [
        f"# pvesim guest emulation: the OpenSSH server of CT {vmid}",
        f"ListenAddress {ip}:{port}",
        f"HostKey {private / 'ssh_host_ed25519_key'}",
        f"PidFile {private / 'sshd.pid'}",
        f"AuthorizedKeysFile {ct_dir / '.ssh' / 'authorized_keys'}",
        "AuthorizedKeysCommand none",
        "AuthorizedPrincipalsFile none",
        f"AllowUsers {account.login}",
        "PermitRootLogin prohibit-password",
        "PubkeyAuthentication yes",
        "PasswordAuthentication no",
        "KbdInteractiveAuthentication no",
        "HostbasedAuthentication no",
        "UsePAM no",
        # The authorized_keys file belongs to the CT's user, as /root/.ssh does in a CT.
        "StrictModes no",
        "DisableForwarding yes",
        "PermitTunnel no",
        "PermitUserRC no",
        "PermitUserEnvironment no",
        "UseDNS no",
        "PrintMotd no",
        "PrintLastLog no",
        "LogLevel INFO",
        f"ForceCommand {session_command(ct_dir, account, vmid)}",
    ]
    sftp = sftp_server()
    if sftp:
        lines.append(f"Subsystem sftp {sftp}")
    return "\n".join(lines) + "\n"


def host_python() -> str:
    """The interpreter the CT's stand-ins run with: the host's own, which any user can
    reach (the simulator's may live under a private home directory)."""
    for candidate in ("/usr/bin/python3", "/usr/local/bin/python3"):
        if os.access(candidate, os.X_OK):
            return candidate
    return shutil.which("python3") or sys.executable
