"""What a deploy runs inside the container, as shell, built from the declared app.

Pure: it reads nothing and runs nothing. The deploy job (containers/jobs/deploy.py) sends
each step over SSH and streams its output into the job log. Every value a user declared
reaches the shell through `shlex.quote`, and the env never appears in a command line: it
is written from standard input into a file of mode 0600 that the app's unit reads.

Layout (docs/launchpad.md): each deploy unpacks into /srv/releases/<release>, installs
and builds there, and only then is /srv/app switched to it, so a failed install or build
leaves the previous release serving.
"""

from __future__ import annotations

import io
import shlex
import tarfile
import time
from dataclasses import dataclass
from typing import Any

from portal.errors import ValidationFailed

APP_DIR = "/srv/app"
RELEASES_DIR = "/srv/releases"
ENV_FILE = "/etc/cluster-portal/app.env"
UNIT_DIR = "/etc/systemd/system"
APP = "app"  # the app's unit; each other declared process is app-<name>
UNITS_FILE = "/etc/cluster-portal/units"  # the names of the units that serve now
PREVIOUS_FILE = "/etc/cluster-portal/release.previous"  # what /srv/app was before the switch

# service -> (package, unit) by package manager. A distribution without the service
# (MongoDB left Debian and Ubuntu's archives) gets a clear refusal, not a failed apt run.
SERVICES: dict[str, dict[str, tuple[str, str]]] = {
    "apt": {
        "postgresql": ("postgresql", "postgresql"),
        "mariadb": ("mariadb-server", "mariadb"),
        "redis": ("redis-server", "redis-server"),
        "nginx": ("nginx", "nginx"),
        "memcached": ("memcached", "memcached"),
    },
    "dnf": {
        "postgresql": ("postgresql-server", "postgresql"),
        "mariadb": ("mariadb-server", "mariadb"),
        "redis": ("redis", "redis"),
        "nginx": ("nginx", "nginx"),
        "memcached": ("memcached", "memcached"),
        "mongodb": ("mongodb-org", "mongod"),
    },
}
PACKAGE_MANAGER = {"debian": "apt", "ubuntu": "apt", "rockylinux": "dnf", "almalinux": "dnf"}
# Every step starts so: `$R` roots the paths it writes. It is empty in a real container;
# the simulator's guest emulation roots a CT at a directory (docs/pvesim.md).
_PRELUDE = 'set -e; R="${PVESIM_GUEST_ROOT:-}";'
_PATHS = f'U="$R"{UNIT_DIR}; M="$R"{UNITS_FILE}; E="$R"{ENV_FILE}; P="$R"{PREVIOUS_FILE};'


@dataclass(frozen=True)
class Step:
    name: str
    title: str
    command: str  # one shell command line, run with `sh -c` by the login shell
    stdin: bytes = b""  # sent to the command; never logged


def package_manager(os_type: str) -> str:
    try:
        return PACKAGE_MANAGER[os_type]
    except KeyError:
        raise ValidationFailed(
            f"deploys know the package manager of {', '.join(sorted(PACKAGE_MANAGER))}, "
            f"not of '{os_type or 'this template'}'",
            field="template",
        ) from None


def services_step(os_type: str, services: list[str]) -> Step | None:
    """Install the declared services from the distribution's packages, enabled and started."""
    if not services:
        return None
    manager = package_manager(os_type)
    known = SERVICES[manager]
    missing = [s for s in services if s not in known]
    if missing:
        raise ValidationFailed(
            f"{', '.join(missing)}: not a service {os_type} packages "
            f"(known: {', '.join(sorted(known))})",
            field="services",
        )
    packages = " ".join(shlex.quote(known[s][0]) for s in services)
    units = " ".join(shlex.quote(known[s][1]) for s in services)
    install = (
        f"export DEBIAN_FRONTEND=noninteractive; apt-get update -qq; apt-get install -y {packages}"
        if manager == "apt"
        else f"dnf install -y {packages}"
    )
    return Step(
        "services",
        "Install and start the services",
        f"{_PRELUDE} {install}; systemctl enable --now {units}",
    )


def source_step(release: str) -> Step:
    """Unpack the commit's tree (standard input: the archive) into its release directory."""
    where = _release_dir(release)
    return Step(
        "source",
        "Bring the source at the commit",
        f"{_PRELUDE} rm -rf {where}.new; mkdir -p {where}.new; "
        f"tar -xzf - -C {where}.new --no-same-owner; rm -rf {where}; mv {where}.new {where}; "
        f"touch {where}; "  # tar gave it the commit's time: prune goes by deploy time
        f"echo unpacked $(find {where} -type f | wc -l) files into {RELEASES_DIR}/{release}",
    )


def command_step(name: str, title: str, command: str, *, env: dict[str, str], release: str) -> Step:
    """A declared install or build command, in the release's directory, with its env.

    The env arrives on standard input as `export` lines (sh's own quoting), read by `cat`
    (a session may not reopen /dev/stdin) and evaluated before the command runs: never on
    a command line, never in the log.
    """
    exports = "".join(f"export {k}={shlex.quote(v)}\n" for k, v in sorted(env.items()))
    return Step(
        name,
        title,
        f'{_PRELUDE} cd {_release_dir(release)}; eval "$(cat)"; '
        f"exec sh -c {shlex.quote(command)} </dev/null",
        stdin=exports.encode(),
    )


def unit_names(app: dict[str, Any]) -> list[str]:
    """The app's units: `app` for its start command, `app-<name>` for each other process."""
    return [APP] + [f"{APP}-{name}" for name in sorted(app.get("processes") or {})]


def unit_files(app: dict[str, Any], *, description: str) -> dict[str, str]:
    """Each unit's file, by unit name."""
    commands = {APP: app["start"]}
    commands |= {f"{APP}-{n}": c for n, c in (app.get("processes") or {}).items()}
    return {
        name: unit_text(command, description=f"{description}: {name}")
        for name, command in commands.items()
    }


def switch_step(release: str, units: dict[str, str], env: dict[str, str]) -> Step:
    """Put the release's env (mode 0600) and units in place and point /srv/app at it,
    keeping what served as `.previous` (the env, the units, their list and the release);
    stop the units it no longer has; (re)start its units.

    The env and the unit files arrive on standard input as a tar archive: no value a user
    declared is on a command line. The first line of output names the release that served
    before (nothing on a first deploy).
    """
    names = " ".join(sorted(units))
    services = " ".join(f"{name}.service" for name in sorted(units))
    body = "".join(f"{key}={_env_value(value)}\n" for key, value in sorted(env.items()))
    files = {f"{name}.service": text for name, text in units.items()} | {"app.env": body}
    return Step(
        "release",
        "Write its env and units, switch to the new release and start it",
        f"{_PRELUDE} {_PATHS} umask 077; "
        f't=$(mktemp -d); tar -xf - -C "$t" --no-same-owner; mkdir -p "$U" "$(dirname "$M")"; '
        f'readlink "$R"{APP_DIR} > "$P" || : > "$P"; echo "serving before: $(cat "$P")"; '
        f'old=$(cat "$M" 2>/dev/null || true); printf "%s\\n" $old > "$M.previous"; '
        f'if [ -f "$E" ]; then cp -p "$E" "$E.previous"; fi; '
        f'for u in $old; do if [ -f "$U/$u.service" ]; then '
        f'cp -p "$U/$u.service" "$U/$u.service.previous"; fi; done; '
        f'for u in $old; do case " {names} " in *" $u "*) ;; *) '
        f'systemctl disable --now "$u.service" || true; rm -f "$U/$u.service";; esac; done; '
        f'changed=; for u in {names}; do cmp -s "$t/$u.service" "$U/$u.service" || changed=1; '
        f'chmod 644 "$t/$u.service"; mv "$t/$u.service" "$U/$u.service"; done; '
        f'chmod 600 "$t/app.env"; mv "$t/app.env" "$E"; rmdir "$t"; {_link(release)} printf "%s\\n" {names} > "$M"; '
        # Only a changed unit needs systemd to read it again (and to enable it).
        f'if [ -n "$changed" ]; then systemctl daemon-reload; systemctl enable {services}; fi; '
        f"systemctl restart {services}",
        stdin=_tar(files, private=frozenset({"app.env"})),
    )


def rollback_step() -> Step:
    """Back to the release, env and units that served before (after a failed switch or
    health check). With nothing before (a first deploy), the new units are stopped. Its
    last line of output names the release that serves again (nothing: none)."""
    return Step(
        "rollback",
        "Go back to the previous release",
        f"{_PRELUDE} {_PATHS} "
        f'new=$(cat "$M" 2>/dev/null || true); old=$(cat "$M.previous" 2>/dev/null || true); '
        f'for u in $new; do case " $(echo $old) " in *" $u "*) ;; *) '
        f'systemctl disable --now "$u.service" || true; rm -f "$U/$u.service";; esac; done; '
        f'for u in $old; do if [ -f "$U/$u.service.previous" ]; then '
        f'mv "$U/$u.service.previous" "$U/$u.service"; fi; done; '
        f'if [ -f "$E.previous" ]; then mv "$E.previous" "$E"; fi; '
        f'printf "%s\\n" $old > "$M"; previous=$(cat "$P" 2>/dev/null || true); '
        f'if [ -n "$previous" ]; then ln -sfn "$previous" "$R"{APP_DIR}.new; '
        f'mv -Tf "$R"{APP_DIR}.new "$R"{APP_DIR}; fi; systemctl daemon-reload; '
        f'for u in $old; do systemctl enable "$u.service"; systemctl restart "$u.service"; done; '
        f'echo "serving again: $previous"',
    )


def logs_command(units: list[str], *, lines: int, follow: bool) -> str:
    """The journal of the app's units (journalctl merges them in time order)."""
    selected = " ".join(f"-u {shlex.quote(u + '.service')}" for u in units)
    return f"journalctl {selected} -n {int(lines)} --no-pager" + (" -f" if follow else "")


def _tar(files: dict[str, str], *, private: frozenset[str] = frozenset()) -> bytes:
    """Files as a tar archive: those named in `private` mode 0600, the others 0644."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as archive:
        for name, text in sorted(files.items()):
            data = text.encode()
            info = tarfile.TarInfo(name)
            info.size, info.mtime = len(data), int(time.time())
            info.mode = 0o600 if name in private else 0o644
            archive.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def prune_step(keep: int) -> Step:
    """Remove all but the `keep` newest releases, never the one that serves."""
    releases = f'"$R"{RELEASES_DIR}'
    return Step(
        "prune",
        "Remove old releases",
        f'{_PRELUDE} cd {releases}; serving=$(basename "$(readlink "$R"{APP_DIR})"); '
        f"ls -1t | tail -n +{keep + 1} | while read -r old; do "
        f'[ "$old" = "$serving" ] || rm -rf -- "$old"; done',
    )


def unit_text(start: str, *, description: str) -> str:
    """A unit of the app: a command in the app's directory, with its env file, restarted
    when it fails."""
    if "\n" in start or "\n" in description:
        raise ValidationFailed("a command is one line", field="app")
    return (
        "[Unit]\n"
        f"Description={description}\n"
        "After=network-online.target\n\n"
        "[Service]\n"
        f"WorkingDirectory={APP_DIR}\n"
        f"EnvironmentFile=-{ENV_FILE}\n"
        f"ExecStart=/bin/sh -c {shlex.quote(start)}\n"
        "Restart=on-failure\n\n"
        "[Install]\n"
        "WantedBy=multi-user.target\n"
    )


def release_name(commit: str, job_id: str) -> str:
    """A release's directory name: unique per deploy, so a redeploy of one commit never
    unpacks over the tree that serves."""
    return f"{commit[:12]}-{job_id.replace('-', '')[:8]}"


def _release_dir(release: str) -> str:
    return f'"$R"{shlex.quote(f"{RELEASES_DIR}/{release}")}'


def _link(release: str) -> str:
    # A relative link, so it resolves the same wherever the tree is rooted; renamed into
    # place so /srv/app always points at a whole release.
    target = shlex.quote(f"releases/{release}")
    return f'ln -sfn {target} "$R"{APP_DIR}.new; mv -Tf "$R"{APP_DIR}.new "$R"{APP_DIR};'


def _env_value(value: str) -> str:
    # systemd strips one level of double quotes and reads backslash escapes inside them;
    # it expands no variables in an EnvironmentFile.
    escaped = value.replace("\\", "\\\\").replace('"', '\\"')
    return f'"{escaped}"'
