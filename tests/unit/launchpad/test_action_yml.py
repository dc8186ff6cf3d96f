"""action.yml and the script agree: each input reaches the script as INPUT_*, each output
is the script's step output."""

from __future__ import annotations

import re

import yaml

from tests.fixtures.launchpad_action import ROOT

ACTION = yaml.safe_load((ROOT / "deploy" / "launchpad" / "action.yml").read_text())
SCRIPT = (ROOT / "deploy" / "launchpad" / "launchpad.py").read_text()


def test_it_is_a_composite_action_that_installs_portalctl_then_runs_the_script() -> None:
    steps = ACTION["runs"]["steps"]
    assert ACTION["runs"]["using"] == "composite"
    assert "pip install" in steps[0]["run"] and "$RUNNER_TEMP" in steps[0]["run"]
    assert steps[1]["run"] == 'python3 "$GITHUB_ACTION_PATH/launchpad.py"'


def test_every_input_is_passed_as_a_variable_and_none_inside_the_script_text() -> None:
    step = ACTION["runs"]["steps"][1]
    for name in ACTION["inputs"]:
        if name == "portalctl":
            continue
        key = "INPUT_" + name.upper().replace("-", "_")
        assert step["env"][key] == "${{ inputs." + name + " }}"
    for s in ACTION["runs"]["steps"]:
        assert "${{" not in s["run"], "an input inside a run script can become shell code"


def test_the_inputs_the_issue_asks_for() -> None:
    wanted = {
        "portal-url", "token", "template", "install", "build", "start", "port", "health",
        "services", "access", "env", "ttl", "command", "github-token", "portalctl",
    }  # fmt: skip
    assert wanted <= set(ACTION["inputs"])
    assert ACTION["inputs"]["command"]["default"] == "auto"
    assert ACTION["inputs"]["github-token"]["default"] == "${{ github.token }}"
    assert ACTION["inputs"]["ttl"]["default"] == ""


def test_outputs_are_the_scripts() -> None:
    for name in ("url", "ssh", "container"):
        assert ACTION["outputs"][name]["value"] == "${{ steps.launchpad.outputs." + name + " }}"
        assert re.search(rf'"{name}":', SCRIPT)
