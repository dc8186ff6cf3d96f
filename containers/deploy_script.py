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

import shlex
from dataclasses import dataclass

from portal.errors import ValidationFailed

APP_DIR = "/srv/app"
RELEASES_DIR = "/srv/releases"
ENV_FILE = "/etc/cluster-portal/app.env"
UNIT_DIR = "/etc/systemd/system"
APP_UNIT = "app.service"

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


def env_step(env: dict[str, str]) -> Step:
    """The env file (KEY="value" lines, systemd's EnvironmentFile syntax), mode 0600."""
    body = "".join(f"{key}={_env_value(value)}\n" for key, value in sorted(env.items()))
    target = f'"$R"{shlex.quote(ENV_FILE)}'
    directory = f'"$R"{shlex.quote(ENV_FILE.rsplit("/", 1)[0])}'
    return Step(
        "env",
        "Write the environment file",
        f"{_PRELUDE} umask 077; mkdir -p {directory}; cat > {target}.new; mv {target}.new {target}",
        stdin=body.encode(),
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


def serving_step() -> Step:
    """What /srv/app points at now (nothing on a first deploy): the release to go back to."""
    return Step("serving", "Which release serves", f'{_PRELUDE} readlink "$R"{APP_DIR} || true')


def switch_step(release: str, start: str, *, description: str) -> Step:
    """Point /srv/app at the release, write the app's unit, and (re)start it."""
    unit = f'"$R"{shlex.quote(f"{UNIT_DIR}/{APP_UNIT}")}'
    return Step(
        "release",
        "Switch to the new release and start it",
        f'{_PRELUDE} {_link(release)} mkdir -p "$R"{UNIT_DIR}; cat > {unit}.new; '
        f"mv {unit}.new {unit}; "
        f"systemctl daemon-reload; systemctl enable {APP_UNIT}; systemctl restart {APP_UNIT}",
        stdin=unit_text(start, description=description).encode(),
    )


def rollback_step(previous: str) -> Step:
    """Back to the release that served before (after a failed health check)."""
    release = previous.rsplit("/", 1)[-1]
    return Step(
        "rollback",
        "Go back to the previous release",
        f"{_PRELUDE} {_link(release)} systemctl restart {APP_UNIT}",
    )


def stop_step() -> Step:
    """A first deploy that failed its health check: nothing else to go back to."""
    return Step("stop", "Stop the app", f"{_PRELUDE} systemctl stop {APP_UNIT} || true")


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
    """The app's systemd unit: its start command in its directory, its env file, restarts."""
    if "\n" in start or "\n" in description:
        raise ValidationFailed("the start command is one line", field="app")
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
