"""The action's script, imported by path (deploy/launchpad is no package), and a stand-in
for portalctl that answers as the scenario of a test says and records how it was called."""

from __future__ import annotations

import json
import stat
import sys
import textwrap
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.fixtures.launchpad_action import ROOT

ACTION_DIR = ROOT / "deploy" / "launchpad"
if str(ACTION_DIR) not in sys.path:
    sys.path.insert(0, str(ACTION_DIR))

FAKE = textwrap.dedent(
    '''\
    #!{python}
    """portalctl's stand-in: answers from the scenario, records each call."""
    import json, os, stat, sys
    argv = sys.argv[1:]
    scenario_path = os.environ["FAKE_PORTALCTL_SCENARIO"]
    scenario = json.load(open(scenario_path))
    key = " ".join(a for a in argv[:2] if not a.startswith("-") and not a.startswith("/"))
    answers = scenario.setdefault(key, [])
    answer = answers.pop(0) if answers else {{"code": 2, "stderr": ["error: no answer for " + key]}}
    json.dump(scenario, open(scenario_path, "w"))
    record = {{"argv": argv, "url": os.environ.get("PORTAL_URL"), "token": os.environ.get("PORTAL_TOKEN"),
              "inputs": sorted(k for k in os.environ if k.startswith("INPUT_"))}}
    if "--env-file" in argv:
        path = argv[argv.index("--env-file") + 1]
        record["env_file"] = json.load(open(path))
        record["env_mode"] = stat.S_IMODE(os.stat(path).st_mode)
    with open(os.environ["FAKE_PORTALCTL_LOG"], "a") as log:
        log.write(json.dumps(record) + "\\n")
    for line in answer.get("stderr", []):
        print(line, file=sys.stderr)
    if "stdout" in answer:
        print(json.dumps(answer["stdout"]))
    if "text" in answer:
        print(answer["text"])
    sys.exit(answer.get("code", 0))
    '''
)


@dataclass
class FakePortalctl:
    path: Path
    scenario: Path
    log: Path

    def answer(self, command: str, *answers: dict[str, Any]) -> None:
        data = json.loads(self.scenario.read_text())
        data.setdefault(command, []).extend(answers)
        self.scenario.write_text(json.dumps(data))

    def calls(self) -> list[dict[str, Any]]:
        if not self.log.exists():
            return []
        return [json.loads(line) for line in self.log.read_text().splitlines()]

    @property
    def env(self) -> dict[str, str]:
        return {"FAKE_PORTALCTL_SCENARIO": str(self.scenario), "FAKE_PORTALCTL_LOG": str(self.log)}


@pytest.fixture
def fake_portalctl(tmp_path: Path) -> FakePortalctl:
    home = tmp_path / "fake-portalctl"
    home.mkdir()
    path = home / "portalctl"
    path.write_text(FAKE.format(python=sys.executable))
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    scenario = home / "scenario.json"
    scenario.write_text("{}")
    return FakePortalctl(path, scenario, home / "calls.jsonl")
