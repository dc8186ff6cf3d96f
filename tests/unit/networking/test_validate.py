"""The validators of an apply run side by side, and one failing fails the apply cleanly.

Stand-in validators (shell scripts in place of GATEWAY_NGINX_BIN and GATEWAY_DNSMASQ_BIN)
that take a second each: the HTTP nginx's, every stream shard's and dnsmasq's together
must take about one second, not ten; a refusal
names its validator with its words; the other is waited for, whatever the outcome. With
the real nginx and dnsmasq: tests/functional/networking/test_apply.py.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest

from networking.gateway.apply import ApplyRun
from networking.gateway.checks import validate_stage
from networking.gateway.paths import GatewayPaths
from networking.gateway.servers import Nginx
from networking.render import GatewayOptions, SiteState, render
from portal.errors import ApplyFailed, ErrorCode
from tests.factories import make_site

pytestmark = pytest.mark.django_db

SECONDS = 1.0


def validator(tmp: Path, name: str, *, fails: str = "", marker: Path | None = None) -> str:
    """A script that takes SECONDS, touches `marker` as it ends, and fails with `fails`."""
    script = tmp / name
    lines = ["#!/bin/sh", f"sleep {SECONDS}"]
    if marker:
        lines.append(f"touch {marker}")
    if fails:
        lines += [f"echo '{fails}' >&2", "exit 1"]
    script.write_text("\n".join([*lines, "exit 0", ""]))
    script.chmod(0o755)
    return str(script)


@pytest.fixture
def run(tmp_path: Path) -> ApplyRun:
    options = GatewayOptions(root=tmp_path / "gw")
    return ApplyRun(
        site=make_site(None),
        generation=1,
        paths=GatewayPaths.from_settings(tmp_path / "gw"),
        options=options,
        force=False,
    )


def http(run: ApplyRun) -> Nginx:
    return Nginx(run.paths, run.options)


def every(run: ApplyRun) -> list[Nginx]:
    """The HTTP nginx and each stream shard's (8 by default)."""
    return Nginx.every(run.paths, run.options)


def stage_of(run: ApplyRun, tmp_path: Path) -> tuple[Path, Any]:
    state = SiteState(
        slug="local",
        name="Local",
        domain="apps.example.test",
        internal_domain="cluster.example.test",
        subnet="10.15.0.0/16",
        gateway_ip="10.15.0.1",
        dhcp_start="10.15.255.0",
        dhcp_end="10.15.255.254",
    )
    return tmp_path / "stage", render(state, run.options)


def test_both_validators_run_at_once(run: ApplyRun, tmp_path: Path, settings: Any) -> None:
    settings.GATEWAY_NGINX_BIN = validator(tmp_path, "nginx")
    settings.GATEWAY_DNSMASQ_BIN = validator(tmp_path, "dnsmasq")
    stage, rendered = stage_of(run, tmp_path)
    began = time.monotonic()
    assert validate_stage(run, stage, rendered, nginxes=every(run), dnsmasq=True) == {}
    took = time.monotonic() - began
    assert SECONDS <= took < 1.8 * SECONDS, took  # one after the other would be 10 s
    assert run.timings["nginx -t"] >= SECONDS and run.timings["dnsmasq --test"] >= SECONDS
    shards = [f"nginx -t stream-{i}" for i in range(run.options.stream_shards)]
    assert all(run.timings[name] >= SECONDS for name in shards), run.timings
    assert SECONDS <= run.timings["nginx validation"] < 1.8 * SECONDS  # the longest, not the sum


def test_one_refusing_fails_with_its_words_once_the_other_has_finished(
    run: ApplyRun, tmp_path: Path, settings: Any
) -> None:
    done = tmp_path / "nginx-finished"
    settings.GATEWAY_NGINX_BIN = validator(tmp_path, "nginx", marker=done)
    settings.GATEWAY_DNSMASQ_BIN = validator(
        tmp_path, "dnsmasq", fails="dnsmasq: bad port at line 3 of /etc/elsewhere.conf"
    )
    stage, rendered = stage_of(run, tmp_path)
    with pytest.raises(ApplyFailed) as failed:
        validate_stage(run, stage, rendered, nginxes=[http(run)], dnsmasq=True)
    assert failed.value.code == ErrorCode.VALIDATE
    assert failed.value.message.startswith("dnsmasq --test rejected the configuration")
    assert "bad port at line 3" in failed.value.message and "nginx -t" not in failed.value.message
    assert done.exists()  # nginx -t was waited for, not left running
    assert set(run.timings) >= {"nginx -t", "dnsmasq --test"}


def test_both_refusing_name_both(run: ApplyRun, tmp_path: Path, settings: Any) -> None:
    settings.GATEWAY_NGINX_BIN = validator(tmp_path, "nginx", fails="nginx: [emerg] no cert")
    settings.GATEWAY_DNSMASQ_BIN = validator(tmp_path, "dnsmasq", fails="dnsmasq: bad option")
    stage, rendered = stage_of(run, tmp_path)
    with pytest.raises(ApplyFailed) as failed:
        validate_stage(run, stage, rendered, nginxes=[http(run)], dnsmasq=True)
    message = failed.value.message
    assert message.index("nginx -t rejected") < message.index("dnsmasq --test rejected")
    assert "no cert" in message and "bad option" in message


def test_a_validator_not_asked_for_does_not_run(
    run: ApplyRun, tmp_path: Path, settings: Any
) -> None:
    settings.GATEWAY_NGINX_BIN = validator(tmp_path, "nginx", fails="must not run")
    settings.GATEWAY_DNSMASQ_BIN = validator(tmp_path, "dnsmasq")
    stage, rendered = stage_of(run, tmp_path)
    assert validate_stage(run, stage, rendered, nginxes=[], dnsmasq=True) == {}
    assert "nginx -t" not in run.timings


def test_a_missing_validator_fails_the_apply_after_the_other_ends(
    run: ApplyRun, tmp_path: Path, settings: Any
) -> None:
    done = tmp_path / "dnsmasq-finished"
    settings.GATEWAY_NGINX_BIN = str(tmp_path / "no-such-nginx")
    settings.GATEWAY_DNSMASQ_BIN = validator(tmp_path, "dnsmasq", marker=done)
    stage, rendered = stage_of(run, tmp_path)
    with pytest.raises(ApplyFailed, match="is not installed on the gateway host"):
        validate_stage(run, stage, rendered, nginxes=[http(run)], dnsmasq=True)
    assert done.exists()
