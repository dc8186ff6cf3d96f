"""What the metrics endpoint tests share (test_metrics_api.py, test_metrics_resources.py):
the tokens of their simulator (`metrics_sim` in conftest.py), Proxmox's texts, and the
check of an answer against a shape written from pve-api-schema.json's `returns`.

A shape maps each field to (JSON types, required): integer -> int; number -> int or
float; boolean -> 0/1 (Perl has no true/false).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pytest
from proxmoxer import ProxmoxAPI, ResourceException

from pvesim.testing import SimulatorThread

VMUSER = "vmuser@pve!metrics"  # PVEVMUser on /: VM.Audit, no Sys/Datastore/Pool/SDN.Audit
NOBODY = "nobody@pve!metrics"  # NoAccess on /
UNDECLARED = "property is not defined in schema and the schema does not allow additional properties"
MISSING = "property is missing and it is not optional"
MIB, GIB = 1 << 20, 1 << 30

Shape = Mapping[str, tuple[tuple[type, ...], bool]]
INT, NUM, STR, DICT, LIST = (int,), (int, float), (str,), (dict,), (list,)
BOOL = (int,)


def assert_shape(data: Mapping[str, Any], shape: Shape) -> None:
    """Every field declared, every required one there, every value of its type."""
    undeclared = set(data) - set(shape)
    assert not undeclared, f"undeclared fields {sorted(undeclared)} in {data}"
    missing = {k for k, (_, required) in shape.items() if required and k not in data}
    assert not missing, f"required fields {sorted(missing)} missing from {data}"
    for key, value in data.items():
        types = shape[key][0]
        ok = isinstance(value, types) and not isinstance(value, bool)
        assert ok, f"{key}={value!r} is not {[t.__name__ for t in types]}"


def client(sim: SimulatorThread, tokenid: str) -> ProxmoxAPI:
    """proxmoxer with one of the simulator's tokens."""
    user, name = tokenid.split("!", 1)
    return ProxmoxAPI(
        sim.host,
        port=sim.port,
        user=user,
        token_name=name,
        token_value=sim.tokens[tokenid].split(":", 1)[0],
        verify_ssl=str(sim.ca_path),
    )


def failure(call: Any, **params: Any) -> tuple[int, str, dict[str, str] | None]:
    """(status, reason phrase, per-parameter errors or None) of a call that must fail."""
    with pytest.raises(ResourceException) as exc:
        call(**params)
    errors = exc.value.errors if isinstance(exc.value.errors, dict) else None
    if errors is not None and "errors" in errors:  # proxmoxer's stand-in for no JSON body
        errors = None
    return exc.value.status_code, exc.value.content, errors


def bad_params(errors: dict[str, str]) -> tuple[int, str, dict[str, str]]:
    """What `failure` gives for a 400 with these errors (raise_param_exc)."""
    return 400, "Parameter verification failed.", errors
