"""The ForceCommand of every emulated CT's sshd: one SSH session, as the CT's user.

sshd runs it as the login user (host root when the simulator is root) with
``python -I``, so it imports nothing but the standard library. It drops to the CT's
unprivileged uid and gid (no supplementary groups, no_new_privs, so no setuid program
can give root back), starts in the CT's directory with ``HOME`` there and the CT's
``bin/`` first on ``PATH``, then runs the client's command with ``bash -c`` (or a login
shell when there is none), as sshd itself would.

``python -I session.py CT_DIR UID GID VMID``
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import stat
import sys

PR_SET_NO_NEW_PRIVS = 38
HOST_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
KEPT = ("TERM", "SSH_CLIENT", "SSH_CONNECTION", "SSH_TTY")


def session_env(ct_dir: str, vmid: str, inherited: dict[str, str]) -> dict[str, str]:
    """What the session sees; the same base as the CT's units (guestos.layout)."""
    env = {
        "PATH": f"{ct_dir}/bin:{HOST_PATH}",
        "HOME": ct_dir,
        "LANG": "C.UTF-8",
        "USER": "root",
        "LOGNAME": "root",
        "SHELL": "/bin/bash",
        "PVESIM_GUEST_ROOT": ct_dir,
        "PVESIM_VMID": vmid,
    }
    env.update({k: inherited[k] for k in KEPT if k in inherited})
    return env


def hand_over_stdio(uid: int, gid: int) -> None:
    """Give the session's pipes to the CT's user. In a real CT they belong to root, who
    runs the session, so `/dev/stdin` (`. /dev/stdin`, `cat /dev/stdin`) and `> /dev/stderr`
    reopen them; here they would stay root's and reopening them would be refused."""
    for fd in (0, 1, 2):
        try:
            st = os.fstat(fd)
        except OSError:
            continue
        if stat.S_ISFIFO(st.st_mode) or stat.S_ISSOCK(st.st_mode):
            with contextlib.suppress(OSError):
                os.fchown(fd, uid, gid)


def drop_privileges(uid: int, gid: int) -> None:
    os.setgroups([])
    os.setresgid(gid, gid, gid)
    os.setresuid(uid, uid, uid)
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_NO_NEW_PRIVS)")
    if os.getresuid() != (uid, uid, uid) or os.getresgid() != (gid, gid, gid):
        raise OSError("the privilege drop did not take")


def main(argv: list[str]) -> int:
    if len(argv) != 5:
        print("usage: session.py CT_DIR UID GID VMID", file=sys.stderr)
        return 2
    ct_dir, uid, gid, vmid = argv[1], int(argv[2]), int(argv[3]), argv[4]
    command = os.environ.get("SSH_ORIGINAL_COMMAND")
    env = session_env(ct_dir, vmid, dict(os.environ))
    if os.geteuid() != uid:
        if os.geteuid() != 0:
            print("pvesim session: cannot become the CT's user", file=sys.stderr)
            return 1
        hand_over_stdio(uid, gid)
        drop_privileges(uid, gid)
    os.umask(0o022)
    try:
        os.chdir(ct_dir)
    except OSError as exc:
        print(f"pvesim session: cannot enter the CT's directory: {exc}", file=sys.stderr)
        return 1
    shell = "/bin/bash" if os.access("/bin/bash", os.X_OK) else "/bin/sh"
    if command is None:
        os.execve(shell, ["-" + os.path.basename(shell)], env)  # noqa: S606 - a login shell
    os.execve(shell, [os.path.basename(shell), "-c", command], env)  # noqa: S606 - as sshd does
    return 127  # not reached


if __name__ == "__main__":
    sys.exit(main(sys.argv))
