"""The ``wazuh-agent`` package's stand-in: its files, its unit, and an agent daemon that
enrols as a Wazuh 4.x agent does at its start.

``install`` lays down what the package leaves in a template: ``/var/ossec`` with the
default ``etc/ossec.conf`` (``<address>MANAGER_IP</address>``, no enrolment settings), an
empty ``etc/client.keys``, ``logs/ossec.log``, ``bin/wazuh-agentd`` and the unit
``wazuh-agent.service``, neither enabled nor started (the package starts nothing until it
is told where its manager is).

``wazuh-agentd`` (the unit's ``ExecStart``) reads the first ``<client>`` section of
``etc/ossec.conf`` and, while ``etc/client.keys`` is empty, enrols as wazuh-agentd 4.x does
(src/shared/enrollment_op.c): a TLS connection to ``<enrollment><manager_address>`` (else
the server's address) on ``<enrollment><port>`` (1515), the manager's certificate not
verified unless ``<server_ca_path>`` names a CA; one line,
``OSSEC PASS: <password> OSSEC A:'<name>' V:'<version>' G:'<groups>'`` (the password from
``<authorization_pass_path>``, ``etc/authd.pass``, when that holds one); the answer
``OSSEC K:'<id> <name> <ip> <key>'`` is written to ``etc/client.keys`` (mode 0640), an
``ERROR: <reason>`` is logged as ``ERROR: <reason> (from manager)``. It tries again every
``RETRY`` seconds. Its log, ``logs/ossec.log``, has Wazuh's line format and never the
password or the key.

Not emulated: the agent's data channel (1514) and keep-alives. A test that needs the
agent to show as active on the manager says so to its manager double. Wazuh 5.x's token
enrolment (``wazuh-agent-auth``) is not emulated either.
"""

from __future__ import annotations

import os
import re
import signal
import socket
import ssl
import threading
import time
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .layout import Layout

PACKAGE = "wazuh-agent"
VERSION = "4.14.7-1"
AGENT_VERSION = "v4.14.7"
UNIT = "wazuh-agent.service"
HOME = "var/ossec"
RETRY = 5.0  # seconds between enrolment attempts
TIMEOUT = 10.0
DEFAULT_CONF = """\
<!--
  Wazuh - Agent - Default configuration for debian 12
  More info at: https://documentation.wazuh.com
  (pvesim stand-in: the package's file, trimmed to what the stand-in reads)
-->

<ossec_config>
  <client>
    <server>
      <address>MANAGER_IP</address>
      <port>1514</port>
      <protocol>tcp</protocol>
    </server>
    <config-profile>debian, debian12</config-profile>
    <notify_time>10</notify_time>
    <time-reconnect>60</time-reconnect>
    <auto_restart>yes</auto_restart>
    <crypto_method>aes</crypto_method>
  </client>

  <logging>
    <log_format>plain</log_format>
  </logging>
</ossec_config>
"""
UNIT_TEXT = """\
[Unit]
Description=Wazuh agent
Wants=network-online.target
After=network.target network-online.target

[Service]
Type=simple
ExecStart=/var/ossec/bin/wazuh-agentd -f
TimeoutStopSec=5

[Install]
WantedBy=multi-user.target
"""


# -- the package ---------------------------------------------------------------------------
def install(layout: Layout, python: str) -> None:
    """The package's files and unit (not enabled, not started)."""
    home = layout.root / HOME
    for sub in ("etc", "logs", "bin", "queue/sockets"):
        (home / sub).mkdir(parents=True, exist_ok=True)
    conf = home / "etc" / "ossec.conf"
    if not conf.exists():  # a reinstall keeps the configuration, as dpkg's conffiles
        conf.write_text(DEFAULT_CONF)
        conf.chmod(0o640)
    keys = home / "etc" / "client.keys"
    if not keys.exists():
        keys.touch(mode=0o640)
    (home / "logs" / "ossec.log").touch(mode=0o640)
    daemon = home / "bin" / "wazuh-agentd"
    daemon.write_text(f'#!/bin/sh\nexec {python} {layout.pyz} wazuh-agentd "$@"\n')
    daemon.chmod(0o750)
    layout.package_units.mkdir(parents=True, exist_ok=True)
    (layout.package_units / UNIT).write_text(UNIT_TEXT)


# -- the configuration ---------------------------------------------------------------------
@dataclass
class AgentConf:
    address: str = ""
    port: int = 1514
    enrol_enabled: bool = True
    manager_address: str = ""
    enrol_port: int = 1515
    agent_name: str = ""
    groups: list[str] = field(default_factory=list)
    pass_path: str = "etc/authd.pass"
    server_ca_path: str = ""

    @property
    def enrol_host(self) -> str:
        return self.manager_address or self.address


def read_conf(text: str) -> AgentConf:
    """The first <client> section of an ossec.conf (several <ossec_config> blocks allowed)."""
    body = re.sub(r"<\?xml[^>]*\?>", "", text)
    # The CT's own file, read as the CT's user; the stand-ins use the standard library only.
    root = ET.fromstring(f"<root>{body}</root>")  # noqa: S314
    conf = AgentConf()
    client = root.find("ossec_config/client")
    if client is None:
        return conf
    conf.address = _text(client, "server/address")
    conf.port = int(_text(client, "server/port") or 1514)
    enrollment = client.find("enrollment")
    if enrollment is not None:
        conf.enrol_enabled = _text(enrollment, "enabled", "yes") != "no"
        conf.manager_address = _text(enrollment, "manager_address")
        conf.enrol_port = int(_text(enrollment, "port") or 1515)
        conf.agent_name = _text(enrollment, "agent_name")
        conf.groups = [g for g in _text(enrollment, "groups").split(",") if g.strip()]
        conf.pass_path = _text(enrollment, "authorization_pass_path", "etc/authd.pass")
        conf.server_ca_path = _text(enrollment, "server_ca_path")
    return conf


def _text(node: ET.Element, path: str, default: str = "") -> str:
    found = node.find(path)
    return (found.text or "").strip() if found is not None and found.text else default


# -- the daemon ----------------------------------------------------------------------------
class Agent:
    def __init__(self, layout: Layout) -> None:
        self.layout = layout
        self.home = layout.root / HOME
        self.keys = self.home / "etc" / "client.keys"
        self.stopping = threading.Event()

    def log(self, level: str, message: str) -> None:
        stamp = time.strftime("%Y/%m/%d %H:%M:%S")
        with open(self.home / "logs" / "ossec.log", "a") as fh:
            fh.write(f"{stamp} wazuh-agentd: {level}: {message}\n")

    def inside(self, path: str) -> Path:
        return self.home / path if not path.startswith("/") else self.layout.inside(path)

    def enrolled(self) -> bool:
        try:
            return bool(self.keys.read_text().strip())
        except OSError:
            return False

    def password(self, conf: AgentConf) -> str | None:
        try:
            line = self.inside(conf.pass_path).read_text().splitlines()[0]
        except (OSError, IndexError):
            return None
        if len(line) <= 2:
            return None
        self.log("INFO", f"Using password specified on file: {conf.pass_path}")
        return line

    def name(self, conf: AgentConf) -> str:
        if conf.agent_name:
            return conf.agent_name
        try:
            return (self.layout.root / "etc" / "hostname").read_text().strip()
        except OSError:
            return socket.gethostname()

    def request(self, conf: AgentConf) -> str:
        password = self.password(conf)
        name = self.name(conf)
        self.log("INFO", f"Using agent name as: {name}")
        line = f"OSSEC A:'{name}' V:'{AGENT_VERSION}'"
        if conf.groups:
            line += f" G:'{','.join(conf.groups)}'"
        if password:
            line = f"OSSEC PASS: {password} {line}"
        else:
            self.log("INFO", "No authentication password provided")
        return line + "\n"

    def enrol(self, conf: AgentConf) -> bool:
        host, port = conf.enrol_host, conf.enrol_port
        self.log("INFO", f"Requesting a key from server: {host}")
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        if conf.server_ca_path:
            context.load_verify_locations(str(self.inside(conf.server_ca_path)))
        else:
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        try:
            raw = socket.create_connection((host, port), timeout=TIMEOUT)
        except OSError:
            self.log(
                "ERROR", f"(1208): Unable to connect to enrollment service at '[{host}]:{port}'"
            )
            return False
        try:
            with context.wrap_socket(raw, server_hostname=host) as tls:
                tls.sendall(self.request(conf).encode())
                self.log("INFO", "Waiting for server reply")
                answer = _read_all(tls)
        except ssl.SSLError as exc:
            self.log(
                "ERROR",
                f"SSL error ({exc.reason}). Connection refused by the manager. "
                "Maybe the port specified is incorrect.",
            )
            return False
        except OSError:
            self.log("ERROR", "SSL read (unable to receive message)")
            return False
        return self.store(answer)

    def store(self, answer: str) -> bool:
        if answer.startswith("ERROR: "):
            self.log("ERROR", f"{answer[7:].strip()} (from manager)")
            return False
        found = re.match(r"OSSEC K:'(\d+) (\S+) (\S+) (\S+)'", answer)
        if not found:
            self.log("ERROR", "Invalid keys format received.")
            return False
        staged = self.keys.with_name(f".client.keys.{os.getpid()}")
        fd = os.open(staged, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o640)
        with os.fdopen(fd, "w") as fh:
            fh.write(" ".join(found.groups()) + "\n")
        os.replace(staged, self.keys)
        self.log("INFO", "Valid key received")
        return True

    def run(self) -> int:
        self.log("INFO", f"Started (pid: {os.getpid()}).")
        try:
            conf = read_conf((self.home / "etc" / "ossec.conf").read_text())
        except (OSError, ET.ParseError, ValueError) as exc:
            self.log("ERROR", f"(1226): Error reading XML file 'etc/ossec.conf': {exc}")
            return 1
        if not conf.address or conf.address == "MANAGER_IP":
            self.log("ERROR", f"(4112): Invalid server address found: '{conf.address}'")
            self.log("CRITICAL", "(1215): No client configured. Exiting.")
            return 1
        while not self.enrolled() and not self.stopping.is_set():
            if not conf.enrol_enabled:
                self.log("ERROR", "(1751): File client.keys not found or empty.")
                return 1
            if self.enrol(conf):
                break
            self.stopping.wait(RETRY)
        if not self.stopping.is_set():
            self.log("INFO", f"Agent ready; reporting to {conf.address}:{conf.port}/tcp.")
        while not self.stopping.wait(1.0):
            pass
        self.log("INFO", "(1225): SIGNAL [(15)-(Terminated)] Received. Exit Cleaning...")
        return 0


def _read_all(tls: Any) -> str:
    """Everything the manager sends before it closes (authd closes without TLS's
    close_notify at times: that is the end too)."""
    data = b""
    while True:
        try:
            chunk = tls.recv(4096)
        except ssl.SSLEOFError:
            break
        if not chunk:
            break
        data += chunk
    return data.decode(errors="replace")


def agentd_main(argv: list[str], layout: Layout) -> int:
    agent = Agent(layout)
    signal.signal(signal.SIGTERM, lambda signum, frame: agent.stopping.set())
    signal.signal(signal.SIGINT, lambda signum, frame: agent.stopping.set())
    return agent.run()
