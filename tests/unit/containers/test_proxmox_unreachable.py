"""Which Proxmox errors say the node itself is not answering (they feed containers/health.py)."""

from __future__ import annotations

import pytest
import requests
from proxmoxer.core import ResourceException

from containers.health import is_node_down
from containers.proxmox import ProxmoxUnavailable, classify


def resource(status: int, text: str) -> ResourceException:
    return ResourceException(status, text, text)


@pytest.mark.parametrize(
    ("exc", "down", "reason"),
    [
        (resource(595, "Connection refused"), True, "595 Connection refused"),
        (resource(596, "Connection timed out"), True, "596 Connection timed out"),
        (resource(500, "cluster not ready - no quorum?"), True, None),
        (requests.exceptions.ConnectionError("refused"), True, "ConnectionError"),
        (requests.exceptions.ConnectTimeout("slow"), True, "ConnectTimeout"),
        # Slow or busy, but answering: retried, never a reason to mark the node offline.
        (requests.exceptions.ReadTimeout("slow"), False, "ReadTimeout"),
        (
            resource(500, "can't lock file '/run/lock/lxc/pve-config-101.conf' - got timeout"),
            False,
            None,
        ),
        (resource(503, "Service Unavailable"), False, None),
    ],
)
def test_unreachable_errors_are_told_apart(exc, down, reason) -> None:
    mapped = classify(exc)
    assert isinstance(mapped, ProxmoxUnavailable)
    assert is_node_down(mapped) is down
    if reason:
        assert mapped.reason == reason
