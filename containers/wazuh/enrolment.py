"""What a new container's Wazuh agent is told, as one shell script per enrolment mode.

Pure: it reads nothing and runs nothing. The create job's enrolment step
(containers/jobs/wazuh.py) runs the script in the container over SSH with the portal's
deploy key, with the registration password or enrolment token on its STANDARD INPUT (read
by the shell's `read` built-in and written by its `printf` built-in: never on a command
line, never in the output), and reads the outcome from its exit status.

The script, whatever the mode:
1. refuses (exit NOT_INSTALLED) when /var/ossec/etc is missing: the template has no agent;
2. rewrites the `<server>` and `<enrollment>` blocks of the first `<client>` section of
   /var/ossec/etc/ossec.conf (the rest of the file, the template's, is kept): the manager's
   address and agent port, the registration port, the agent's name and groups;
3. hands the secret over, as the mode's strategy says (below);
4. enables and (re)starts `wazuh-agent` and waits until /var/ossec/etc/client.keys holds a
   key (exit 0, printing `agent-id: 001`, never the key), the manager refused the agent
   (exit REFUSED, with the agent's own error lines), or it could not reach the manager or
   did not enrol in time (exit UNREACHABLE).

The strategies, one per `EnrolmentMode`, differ only in the secret's way and the default
port:
- `v4_password` (Wazuh 4.x): the password goes to /var/ossec/etc/authd.pass, mode 0640
  (group `wazuh` where it exists), named by `<authorization_pass_path>`; the agent enrols
  with authd on the registration port (1515) at its start, as the Wazuh package does;
- `v5_token` (Wazuh 5.x): the agent is stopped and `wazuh-agent-auth --token-file -` reads
  the token from its standard input (Wazuh 5 reads it from a file or stdin, never from
  the command line), enrolling over HTTPS on 1517; the token is never written to a file.
  An agent without that tool is not a 5.x agent: REFUSED.
A container that is already enrolled (client.keys not empty: an earlier try whose answer
was lost) is only reconfigured and restarted.
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass
from typing import ClassVar
from xml.sax.saxutils import escape

from .models import EnrolmentMode

# Exit statuses of the script, apart from the tools' own (255 is ssh's: the container could
# not be reached; any other is a failure of the script itself, e.g. a read-only file).
ENROLLED = 0
NOT_INSTALLED = 81
UNREACHABLE = 82  # worth another try later
REFUSED = 83  # the manager said no, or the agent cannot enrol this way: not worth a retry

OSSEC = "/var/ossec"
PASSWORD_FILE = f"{OSSEC}/etc/authd.pass"
AGENT_ID_PREFIX = "agent-id: "
POLL = 0.2  # seconds between looks at client.keys


@dataclass(frozen=True)
class AgentConfig:
    """What the agent is told: where its manager is, and who it is."""

    manager_host: str
    agent_port: int
    enrolment_port: int
    name: str
    groups: tuple[str, ...]

    def enrollment_lines(self, extra: tuple[str, ...] = ()) -> list[str]:
        return [
            "    <enrollment>",
            "      <enabled>yes</enabled>",
            f"      <manager_address>{escape(self.manager_host)}</manager_address>",
            f"      <port>{int(self.enrolment_port)}</port>",
            f"      <agent_name>{escape(self.name)}</agent_name>",
            f"      <groups>{escape(','.join(self.groups))}</groups>",
            *extra,
            "    </enrollment>",
        ]

    def server_lines(self) -> list[str]:
        return [
            "    <server>",
            f"      <address>{escape(self.manager_host)}</address>",
            f"      <port>{int(self.agent_port)}</port>",
            "      <protocol>tcp</protocol>",
            "    </server>",
        ]


class Strategy:
    """How one enrolment mode hands the secret to the agent (see the module's docstring)."""

    mode: ClassVar[EnrolmentMode]

    def client_block(self, config: AgentConfig) -> str:
        """The `<server>` and `<enrollment>` blocks written into ossec.conf's `<client>`."""
        return "\n".join([*config.server_lines(), *config.enrollment_lines()]) + "\n"

    def deliver(self) -> str:
        """Shell lines that hand `$S` (the secret) over, before the agent starts."""
        raise NotImplementedError

    def script(self, config: AgentConfig, *, wait_seconds: float) -> str:
        return enrolment_script(self, config, wait_seconds=wait_seconds)

    @staticmethod
    def stdin(secret: str) -> bytes:
        """What the script reads first: the secret, on one line."""
        if "\n" in secret or "\r" in secret:
            raise ValueError("an enrolment secret is one line")
        return f"{secret}\n".encode()


class PasswordStrategy(Strategy):
    """Wazuh 4.x: authd's shared password in /var/ossec/etc/authd.pass (0640)."""

    mode = EnrolmentMode.V4_PASSWORD

    def client_block(self, config: AgentConfig) -> str:
        extra = ("      <authorization_pass_path>etc/authd.pass</authorization_pass_path>",)
        return "\n".join([*config.server_lines(), *config.enrollment_lines(extra)]) + "\n"

    def deliver(self) -> str:
        return (
            'P="$O/etc/authd.pass"\n'
            '(umask 137; printf "%s\\n" "$S" > "$P.new")\n'
            'chgrp wazuh "$P.new" 2>/dev/null || true\n'
            'chmod 640 "$P.new"\n'
            'mv -f "$P.new" "$P"\n'
            'echo "wrote /var/ossec/etc/authd.pass (mode 0640)"\n'
        )


class TokenStrategy(Strategy):
    """Wazuh 5.x: the enrolment token to `wazuh-agent-auth --token-file -` on its stdin."""

    mode = EnrolmentMode.V5_TOKEN

    def deliver(self) -> str:
        return (
            'if [ ! -s "$K" ]; then\n'
            '  if [ ! -x "$O/bin/wazuh-agent-auth" ]; then\n'
            '    echo "this agent has no /var/ossec/bin/wazuh-agent-auth: not a Wazuh 5 agent"\n'
            f"    exit {REFUSED}\n"
            "  fi\n"
            "  systemctl stop wazuh-agent >/dev/null 2>&1 || true\n"
            '  if ! printf "%s\\n" "$S" | "$O/bin/wazuh-agent-auth" --token-file - 2>&1; then\n'
            '    echo "wazuh-agent-auth could not enrol the agent"\n'
            f"    exit {UNREACHABLE}\n"
            "  fi\n"
            "fi\n"
        )


STRATEGIES: dict[str, Strategy] = {s.mode: s for s in (PasswordStrategy(), TokenStrategy())}


def strategy_for(mode: str) -> Strategy:
    return STRATEGIES[EnrolmentMode(mode)]


# The <client> section: its <server> and <enrollment> blocks are replaced by the block in
# file $B (each of the four tags on a line of its own, as Wazuh writes them); a file
# without a <client> section gets one, in an <ossec_config> of its own.
_AWK = (
    "/<client>/ && !done { print; while ((getline l < b) > 0) print l; done = 1; in_c = 1; next }\n"
    "in_c && /<\\/client>/ { in_c = 0 }\n"
    "in_c && (/<server>/ || /<enrollment>/) { skip = 1 }\n"
    "!skip { print }\n"
    "skip && (/<\\/server>/ || /<\\/enrollment>/) { skip = 0 }\n"
)


def enrolment_script(strategy: Strategy, config: AgentConfig, *, wait_seconds: float) -> str:
    """The whole script for `strategy` (see the module's docstring)."""
    tries = max(1, int(wait_seconds / POLL))
    block = strategy.client_block(config)
    return (
        # $R roots the paths: empty in a real container, the CT's directory in the
        # simulator's guest emulation (docs/pvesim.md).
        'R="${PVESIM_GUEST_ROOT:-}"; O="$R/var/ossec"; K="$O/etc/client.keys"\n'
        'if [ ! -d "$O/etc" ]; then\n'
        '  echo "no Wazuh agent in this container: /var/ossec/etc is missing"\n'
        f"  exit {NOT_INSTALLED}\n"
        "fi\n"
        "set -e\n"
        "IFS= read -r S || true\n"
        "umask 027\n"
        'C="$O/etc/ossec.conf"; T="$O/etc/.ossec.conf.portal"\n'
        f'printf "%s" {shlex.quote(block)} > "$T.block"\n'
        'if [ -f "$C" ] && grep -q "<client>" "$C"; then\n'
        f'  awk -v b="$T.block" {shlex.quote(_AWK)} "$C" > "$T"\n'
        "else\n"
        '  { if [ -f "$C" ]; then cat "$C"; fi; printf "<ossec_config>\\n  <client>\\n"; '
        'cat "$T.block"; printf "  </client>\\n</ossec_config>\\n"; } > "$T"\n'
        "fi\n"
        'rm -f "$T.block"; chgrp wazuh "$T" 2>/dev/null || true; chmod 640 "$T"; mv -f "$T" "$C"\n'
        'echo "wrote the <client> section of /var/ossec/etc/ossec.conf"\n'
        f"{strategy.deliver()}"
        "unset S\n"
        'L="$O/logs/ossec.log"; N=$(wc -c < "$L" 2>/dev/null || echo 0)\n'
        "systemctl enable wazuh-agent >/dev/null 2>&1 || true\n"
        "set +e\n"
        "if ! systemctl restart wazuh-agent; then\n"
        '  echo "wazuh-agent did not start"\n'
        f"  exit {REFUSED}\n"
        "fi\n"
        "i=0\n"
        'while [ ! -s "$K" ]; do\n'
        '  E=$(tail -c +$((N + 1)) "$L" 2>/dev/null | grep "ERROR" | tail -n 3)\n'
        '  case "$E" in\n'
        f'    *"(from manager)"*) echo "$E"; exit {REFUSED};;\n'
        f'    *"(1208)"*|*"SSL error"*) echo "$E"; exit {UNREACHABLE};;\n'
        "  esac\n"
        "  i=$((i + 1))\n"
        f"  if [ $i -gt {tries} ]; then\n"
        f'    echo "the agent did not enrol within {wait_seconds:g} s"; '
        f'[ -n "$E" ] && echo "$E"; exit {UNREACHABLE}\n'
        "  fi\n"
        f"  sleep {POLL}\n"
        "done\n"
        f'awk \'NF >= 2 {{ print "{AGENT_ID_PREFIX}" $1; exit }}\' "$K"\n'
    )


def agent_id_in(lines: list[str]) -> str:
    """The agent's id the script printed ("" if none)."""
    for line in reversed(lines):
        if line.startswith(AGENT_ID_PREFIX):
            return line[len(AGENT_ID_PREFIX) :].strip()
    return ""


def forget_key_command(public_key: str) -> str:
    """Remove the portal's deploy key (`public_key`, its OpenSSH line) from root's
    authorized keys, keeping every other line; the file keeps its owner and mode."""
    body = public_key.split()[1]
    return (
        'A="$HOME/.ssh/authorized_keys"; [ -f "$A" ] || exit 0; '
        f'grep -vF -- {shlex.quote(body)} "$A" > "$A.portal" || true; '
        'cat "$A.portal" > "$A"; rm -f "$A.portal"'
    )
