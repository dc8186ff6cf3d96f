"""What a deploy runs inside the container, as shell, built from the declared app.

Pure: it reads nothing and runs nothing. The deploy job (issue #15) sends each step over
SSH and streams its output into the job log. Every value a user declared reaches the
shell through `shlex.quote`, and the env never appears in a command line: it is written
from standard input into a file of mode 0600 that the app's unit reads.
"""

from __future__ import annotations

import json
import shlex
from dataclasses import dataclass

from portal.errors import ValidationFailed

APP_DIR = "/srv/app"
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
        f"DEBIAN_FRONTEND=noninteractive apt-get install -y {packages}"
        if manager == "apt"
        else f"dnf install -y {packages}"
    )
    return Step(
        "services",
        "Install and start the services",
        f"set -e; {install}; systemctl enable --now {units}",
    )


def env_step(env_json: str) -> Step:
    """The env file (KEY="value" lines, systemd's EnvironmentFile syntax), mode 0600."""
    env: dict[str, str] = json.loads(env_json or "{}")
    body = "".join(f"{key}={_env_value(value)}\n" for key, value in sorted(env.items()))
    directory = shlex.quote(ENV_FILE.rsplit("/", 1)[0])
    target = shlex.quote(ENV_FILE)
    return Step(
        "env",
        "Write the environment file",
        f"set -e; umask 077; mkdir -p {directory}; cat > {target}.new; mv {target}.new {target}",
        stdin=body.encode(),
    )


def command_step(name: str, title: str, command: str, *, env_json: str) -> Step:
    """A declared install or build command, in the app's directory, with its env.

    The env arrives on standard input as `export` lines (sh's own quoting), read before
    the command runs: never on a command line, never in the log.
    """
    env: dict[str, str] = json.loads(env_json or "{}")
    exports = "".join(f"export {k}={shlex.quote(v)}\n" for k, v in sorted(env.items()))
    return Step(
        name,
        title,
        f"set -e; cd {shlex.quote(APP_DIR)}; . /dev/stdin; exec sh -c {shlex.quote(command)}",
        stdin=exports.encode(),
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


def unit_step(start: str, *, description: str) -> Step:
    target = shlex.quote(f"{UNIT_DIR}/{APP_UNIT}")
    return Step(
        "unit",
        "Start the app",
        f"set -e; cat > {target}; systemctl daemon-reload; systemctl enable {APP_UNIT}; "
        f"systemctl restart {APP_UNIT}",
        stdin=unit_text(start, description=description).encode(),
    )


def _env_value(value: str) -> str:
    # systemd strips one level of double quotes and reads backslash escapes inside them;
    # it expands no variables in an EnvironmentFile.
    escaped = value.replace("\\", "\\\\").replace('"', '\\"')
    return f'"{escaped}"'
