"""The ``apt-get``/``apt`` and ``dpkg``/``dpkg-query`` stand-ins: packages are recorded, not
installed.

``install`` records each package in ``var/lib/dpkg/status`` (dpkg's own format) and
prints what apt prints. A package that ships a service (postgresql, mariadb-server,
redis-server, nginx, memcached, mongodb-org, ...) gets its unit, record-only: it is
enabled and active, as Debian starts a service on install, but no server runs.
``wazuh-agent`` is the exception: its files, its unit and a daemon that enrols with a
manager are really there (``wazuh.py``), neither enabled nor started, as the package
leaves them until it is told where its manager is.
"""

from __future__ import annotations

import os
import re
import sys
from dataclasses import dataclass, field

from . import wazuh
from .layout import Layout
from .service import ServiceManager

# package -> (unit, description, aliases)
PACKAGE_SERVICES: dict[str, tuple[str, str, tuple[str, ...]]] = {
    "postgresql": ("postgresql", "PostgreSQL RDBMS", ()),
    "mariadb-server": ("mariadb", "MariaDB 10.11.14 database server", ("mysql", "mysqld")),
    "default-mysql-server": ("mariadb", "MariaDB 10.11.14 database server", ("mysql", "mysqld")),
    "mysql-server": ("mysql", "MySQL Community Server", ("mysqld",)),
    "redis-server": ("redis-server", "Advanced key-value store", ("redis",)),
    "redis": ("redis-server", "Advanced key-value store", ("redis",)),
    "nginx": ("nginx", "A high performance web server and a reverse proxy server", ()),
    "memcached": ("memcached", "memcached daemon", ()),
    "mongodb-org": ("mongod", "MongoDB Database Server", ()),
    "mongodb-org-server": ("mongod", "MongoDB Database Server", ()),
    "apache2": ("apache2", "The Apache HTTP Server", ()),
    "rabbitmq-server": ("rabbitmq-server", "RabbitMQ Messaging Server", ()),
}
for _flavour in ("light", "full", "extras", "core"):
    PACKAGE_SERVICES[f"nginx-{_flavour}"] = PACKAGE_SERVICES["nginx"]
for _major in range(13, 18):
    PACKAGE_SERVICES[f"postgresql-{_major}"] = PACKAGE_SERVICES["postgresql"]

VERSIONS = {
    "postgresql": "15+248",
    "mariadb-server": "1:10.11.14-0+deb12u2",
    "redis-server": "5:7.0.15-1~deb12u5",
    "redis": "5:7.0.15-1~deb12u5",
    "nginx": "1.22.1-9+deb12u2",
    "memcached": "1.6.18-1",
    "git": "1:2.39.5-0+deb12u2",
    "curl": "7.88.1-10+deb12u12",
    wazuh.PACKAGE: wazuh.VERSION,
}
_OPTIONS_WITH_VALUE = frozenset({"-o", "-c", "-t", "--target-release", "--default-release"})


@dataclass
class AptArgs:
    command: str = ""
    packages: list[str] = field(default_factory=list)
    assume_yes: bool = False
    simulate: bool = False
    quiet: int = 0


def parse_apt_args(argv: list[str]) -> AptArgs:
    """The command, the package names (``=version``, ``/release``, ``:arch`` dropped) and
    the options that change what is printed; unknown options are tolerated."""
    args = AptArgs()
    words: list[str] = []
    i = 0
    while i < len(argv):
        word = argv[i]
        i += 1
        if not word.startswith("-") or word == "-":
            words.append(word)
            continue
        if word in _OPTIONS_WITH_VALUE:
            i += 1  # its value
        elif word in ("-y", "--yes", "--assume-yes") or re.fullmatch(r"-[a-z]*y[a-z]*", word):
            args.assume_yes = True
            args.quiet += word.count("q")
        elif re.fullmatch(r"-q+", word) or word == "--quiet":
            args.quiet += max(1, word.count("q"))
        elif word.startswith("--quiet="):
            args.quiet += int(word.split("=", 1)[1] or 1)
        elif word in ("-s", "--simulate", "--dry-run", "--just-print", "--no-act"):
            args.simulate = True
    if words:
        args.command = words[0]
        args.packages = [re.split(r"[=/:]", w, maxsplit=1)[0] for w in words[1:]]
    return args


# -- the record (var/lib/dpkg/status) ---------------------------------------------------


def read_status(layout: Layout) -> dict[str, dict[str, str]]:
    try:
        text = layout.dpkg_status.read_text()
    except OSError:
        return {}
    out: dict[str, dict[str, str]] = {}
    for stanza in re.split(r"\n\s*\n", text):
        fields = dict(
            (k.strip(), v.strip())
            for k, _, v in (line.partition(":") for line in stanza.splitlines())
            if k and not k.startswith(" ")
        )
        if fields.get("Package"):
            out[fields["Package"]] = fields
    return out


def write_status(layout: Layout, packages: dict[str, dict[str, str]]) -> None:
    layout.dpkg_status.parent.mkdir(parents=True, exist_ok=True)
    text = "".join(
        "".join(f"{k}: {v}\n" for k, v in fields.items()) + "\n"
        for _, fields in sorted(packages.items())
    )
    tmp = layout.dpkg_status.with_name(f".status.{os.getpid()}")
    tmp.write_text(text)
    os.replace(tmp, layout.dpkg_status)


def version_of(package: str) -> str:
    return VERSIONS.get(package, "1.0-1")


# -- apt-get ---------------------------------------------------------------------------


def apt_main(argv: list[str], layout: Layout, program: str = "apt-get") -> int:
    if "--version" in argv or "-v" in argv:
        print("apt 2.6.1 (amd64)")
        return 0
    args = parse_apt_args(argv)
    if program == "apt" and not sys.stdout.isatty():
        print(
            "\nWARNING: apt does not have a stable CLI interface. Use with caution in scripts.\n",
            file=sys.stderr,
        )
    if args.command in ("update",):
        if args.quiet < 2:
            print("Hit:1 http://deb.debian.org/debian bookworm InRelease")
            print("Hit:2 http://security.debian.org bookworm-security InRelease")
            print("Reading package lists...")
        return 0
    if args.command in ("install", "reinstall"):
        return _install(layout, args)
    if args.command in ("remove", "purge"):
        return _remove(layout, args)
    if args.command in ("upgrade", "dist-upgrade", "full-upgrade", "autoremove"):
        _reading(args)
        print("0 upgraded, 0 newly installed, 0 to remove and 0 not upgraded.")
        return 0
    if args.command in ("clean", "autoclean", "check"):
        return 0
    if program == "apt" and args.command == "list":
        for name, fields in sorted(read_status(layout).items()):
            print(f"{name}/stable,now {fields.get('Version', '')} amd64 [installed]")
        return 0
    print(f"E: Invalid operation {args.command}", file=sys.stderr)
    return 100


def preinstall(layout: Layout, packages: list[str]) -> None:
    """A template's own packages, at a new CT's first start: installed as ``apt-get
    install -y -qq`` would (docs/pvesim.md, ``set_template_packages``)."""
    if packages:
        _install(layout, AptArgs("install", list(packages), assume_yes=True, quiet=2))


def _reading(args: AptArgs) -> None:
    if args.quiet < 2:
        print("Reading package lists...")
        print("Building dependency tree...")
        print("Reading state information...")


def _install(layout: Layout, args: AptArgs) -> int:
    installed = read_status(layout)
    _reading(args)
    new = [p for p in dict.fromkeys(args.packages) if p not in installed]
    for package in args.packages:
        if package in installed:
            print(f"{package} is already the newest version ({version_of(package)}).")
    if new and args.quiet < 2:
        print("The following NEW packages will be installed:")
        print("  " + " ".join(new))
    print(f"0 upgraded, {len(new)} newly installed, 0 to remove and 0 not upgraded.")
    if args.simulate or not new:
        return 0
    for package in new:
        version = version_of(package)
        if args.quiet < 2:
            print(f"Selecting previously unselected package {package}.")
            print(f"Unpacking {package} ({version}) ...")
        installed[package] = {
            "Package": package,
            "Status": "install ok installed",
            "Architecture": "amd64",
            "Version": version,
            "Description": "recorded by the pvesim apt-get stand-in; nothing was installed",
        }
    write_status(layout, installed)
    manager = ServiceManager(layout)
    for package in new:
        print(f"Setting up {package} ({version_of(package)}) ...")
        if package in PACKAGE_SERVICES:
            for line in _install_service(layout, manager, package):
                print(line)
        elif package == wazuh.PACKAGE:
            wazuh.install(layout, sys.executable)
    return 0


def _install_service(layout: Layout, manager: ServiceManager, package: str) -> list[str]:
    """The package's unit (record-only), enabled and started as Debian's postinst does."""
    unit, description, aliases = PACKAGE_SERVICES[package]
    name = f"{unit}.service"
    layout.package_units.mkdir(parents=True, exist_ok=True)
    alias_line = " ".join(f"{a}.service" for a in aliases)
    (layout.package_units / name).write_text(
        f"[Unit]\nDescription={description}\n\n"
        "[Service]\nType=oneshot\nRemainAfterExit=yes\n"
        f"X-Pvesim-Package={package}\n\n"
        "[Install]\nWantedBy=multi-user.target\n" + (f"Alias={alias_line}\n" if aliases else "")
    )
    for alias in aliases:
        link = layout.package_units / f"{alias}.service"
        if not link.is_symlink() and not link.exists():
            link.symlink_to(name)
    messages = manager.enable(name)
    manager.start(name)
    return messages


def _remove(layout: Layout, args: AptArgs) -> int:
    installed = read_status(layout)
    _reading(args)
    gone = [p for p in args.packages if p in installed]
    for package in args.packages:
        if package not in installed:
            print(f"Package '{package}' is not installed, so not removed")
    print(f"0 upgraded, 0 newly installed, {len(gone)} to remove and 0 not upgraded.")
    if args.simulate:
        return 0
    manager = ServiceManager(layout)
    for package in gone:
        print(f"Removing {package} ({installed[package].get('Version', '')}) ...")
        del installed[package]
        unit = wazuh.UNIT if package == wazuh.PACKAGE else None
        if package in PACKAGE_SERVICES:
            unit = f"{PACKAGE_SERVICES[package][0]}.service"
        if unit is not None and manager.find(unit) is not None:
            manager.stop(unit)
            manager.disable(unit)
    write_status(layout, installed)
    return 0


# -- dpkg ------------------------------------------------------------------------------


def dpkg_main(argv: list[str], layout: Layout) -> int:
    """``dpkg -s|--status PKG``, ``dpkg -l [PKG]``, ``dpkg-query -W [-f=FORMAT] PKG``."""
    installed = read_status(layout)
    fmt = "${binary:Package}\t${Version}\n"
    mode, names = "", []
    i = 0
    while i < len(argv):
        word = argv[i]
        i += 1
        if word in ("-s", "--status", "-l", "--list", "-W", "--show"):
            mode = word.lstrip("-")[0].lower()
        elif word in ("-f", "--showformat"):
            fmt = argv[i] if i < len(argv) else fmt
            i += 1
        elif word.startswith(("-f=", "--showformat=")):
            fmt = word.split("=", 1)[1]
        elif not word.startswith("-"):
            names.append(word)
    if mode == "l":
        print("||/ Name           Version      Architecture Description")
        for name, fields in sorted(installed.items()):
            if not names or name in names:
                print(f"ii  {name:<14} {fields.get('Version', ''):<12} amd64        recorded")
        return 0
    if mode not in ("s", "w") or not names:
        print("dpkg: error: need an action option (pvesim stand-in: -s, -l, -W)", file=sys.stderr)
        return 2
    code = 0
    for name in names:
        found = installed.get(name)
        if found is None:
            print(
                f"dpkg-query: package '{name}' is not installed and no information is available",
                file=sys.stderr,
            )
            code = 1
        elif mode == "s":
            print("".join(f"{k}: {v}\n" for k, v in found.items()))
        else:
            print(_show(fmt, found), end="")
    return code


def _show(fmt: str, fields: dict[str, str]) -> str:
    values = {**fields, "binary:Package": fields.get("Package", "")}
    text = re.sub(r"\$\{([^}]+)\}", lambda m: values.get(m.group(1), ""), fmt)
    return text.replace("\\n", "\n").replace("\\t", "\t")
