"""The cluster's VMIDs as the create service sees them: a create waits for the listing
only when its process has none; an old one is used while a thread asks again."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

import pytest

from containers import allocation
from tests.factories import make_site

pytestmark = pytest.mark.django_db


class SlowCluster:
    """A stand-in for the Proxmox client's guest listing: answers when released."""

    def __init__(self) -> None:
        self.vmids: list[int] = []
        self.asked = 0
        self.go = threading.Event()

    def guests(self) -> list[dict[str, Any]]:
        self.asked += 1
        assert self.go.wait(10)
        return [{"vmid": v} for v in self.vmids]


@pytest.fixture
def slow_cluster(monkeypatch: pytest.MonkeyPatch) -> SlowCluster:
    fake = SlowCluster()
    monkeypatch.setattr("containers.proxmox.ProxmoxClient.for_node", lambda node: fake)
    return fake


def test_an_old_answer_is_used_while_a_thread_asks_again(
    slow_cluster: SlowCluster, settings: Any
) -> None:
    site = make_site(None)
    allocation.forget_proxmox_vmids(site)
    slow_cluster.vmids, slow_cluster.go = [100], threading.Event()
    slow_cluster.go.set()
    assert allocation.proxmox_used_vmids(site) == {100}  # none kept yet: it waits
    settings.PROXMOX_VMIDS_MAX_AGE = 0.0  # the answer is old now
    slow_cluster.vmids, slow_cluster.go = [100, 101], threading.Event()
    started = time.monotonic()
    assert allocation.proxmox_used_vmids(site) == {100}  # the old one, at once
    assert allocation.proxmox_used_vmids(site) == {100}  # while one thread asks
    assert time.monotonic() - started < 1
    wait_for(lambda: slow_cluster.asked == 2)
    time.sleep(0.1)
    assert slow_cluster.asked == 2  # one thread asks, not two
    slow_cluster.go.set()
    wait_for(lambda: allocation.proxmox_used_vmids(site) == {100, 101})
    allocation.forget_proxmox_vmids(site)


def wait_for(done: Callable[[], bool]) -> None:
    deadline = time.monotonic() + 5
    while not done():
        assert time.monotonic() < deadline, "never happened"
        time.sleep(0.01)
