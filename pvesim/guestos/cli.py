"""One entry point for every stand-in: ``python3 guestos.pyz TOOL ARGS...``
(``<ct>/bin/TOOL`` is a two-line shell script that runs exactly that)."""

from __future__ import annotations

import sys

from . import apt, boot, journal, systemctl, wazuh
from .layout import Layout, find_root


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if not argv:
        print("usage: guestos.pyz TOOL [ARGS...]", file=sys.stderr)
        return 2
    tool, rest = argv[0], argv[1:]
    layout = Layout(find_root())
    if tool in ("apt-get", "apt"):
        return apt.apt_main(rest, layout, tool)
    if tool in ("dpkg", "dpkg-query"):
        return apt.dpkg_main(rest, layout)
    if tool == "systemctl":
        return systemctl.main(rest, layout)
    if tool == "service":
        return systemctl.service_main(rest, layout)
    if tool == "journalctl":
        return journal.main(rest, layout)
    if tool == "wazuh-agentd":
        return wazuh.agentd_main(rest, layout)
    if tool == "boot":
        return boot.main(layout)
    print(f"guestos: unknown tool {tool!r}", file=sys.stderr)
    return 2
