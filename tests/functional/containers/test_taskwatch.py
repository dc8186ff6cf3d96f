"""Waiting for Proxmox tasks: a shared poll per node, learnt first checks, and fallbacks.

Through the simulator over HTTPS; the client's own requests are counted by wrapping
its session's `send`, which still sends every request. The cases without the simulator
are in tests/unit/containers/test_taskwatch.py.
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest
from django.conf import settings

from containers import proxmox as proxmox_module
from containers.proxmox import ProxmoxClient, TaskFailed
from containers.taskwatch import DurationGuess
from tests.conftest import TOKEN_ID, TOKEN_SECRET

TEMPLATE = "local:vztmpl/debian-12-standard_12.7-1_amd64.tar.zst"
VMIDS = range(9101, 9111)  # far from what the other tests use


def counting_client(sim: Any) -> tuple[ProxmoxClient, Counter[str]]:
    client = ProxmoxClient(
        api_url=sim.url, token_id=TOKEN_ID, token_secret=TOKEN_SECRET, verify=str(sim.ca_path)
    )
    session = client.api._store["session"]
    send = session.send
    counts: Counter[str] = Counter()
    lock = threading.Lock()

    def counted(request: Any, **kwargs: Any) -> Any:
        path = request.path_url.split("?")[0]
        kind = "list" if path.endswith("/tasks") else path.rsplit("/", 1)[-1]
        with lock:
            counts[f"{request.method} {kind}"] += 1
        return send(request, **kwargs)

    session.send = counted
    return client, counts


@pytest.fixture
def fresh_guesses(monkeypatch: pytest.MonkeyPatch) -> DurationGuess:
    guesses = DurationGuess()
    monkeypatch.setattr(proxmox_module, "durations", guesses)
    return guesses


@pytest.fixture(scope="module")
def made_cts(sim: Any) -> Iterator[list[int]]:
    """CTs on pve1 to start and stop; removed after the module."""
    client, _ = counting_client(sim)
    sim.admin.reset_faults()
    made = []
    for vmid in VMIDS:
        upid = client.create_container(
            "pve1",
            vmid=vmid,
            ostemplate=TEMPLATE,
            hostname=f"tw{vmid}",
            cores=1,
            memory_mib=128,
            swap_mib=0,
            rootfs="local-lvm:1",
            net0="name=eth0,bridge=vmbr0,ip=dhcp",
            tags="test",
            description="",
        )
        client.wait_task(upid)
        made.append(vmid)
    yield made
    sim.admin.reset_faults()
    for vmid in made:
        if client.container_status("pve1", vmid).get("status") == "running":
            client.wait_task(client.stop("pve1", vmid))
        client.wait_task(client.delete_container("pve1", vmid, purge=True, force=True))


@pytest.fixture
def cts(sim: Any, made_cts: list[int]) -> Iterator[list[int]]:
    """The module's CTs, all stopped, with the simulator's defaults back afterwards."""
    client, _ = counting_client(sim)
    sim.admin.reset_faults()
    for vmid in made_cts:
        if client.container_status("pve1", vmid).get("status") == "running":
            client.wait_task(client.stop("pve1", vmid))
    yield made_cts
    sim.admin.reset_faults()


def wait_all(client: ProxmoxClient, upids: list[str]) -> list[str]:
    results: list[str] = [""] * len(upids)
    errors: list[BaseException] = []

    def one(i: int) -> None:
        try:
            results[i] = client.wait_task(upids[i])
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=one, args=(i,)) for i in range(len(upids))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert not errors, errors
    return results


def test_concurrent_waits_share_one_poll_of_the_node(
    sim: Any, cts: list[int], fresh_guesses: DurationGuess
) -> None:
    client, counts = counting_client(sim)
    sim.admin.set_task_seconds("vzstart", 0.8)
    sim.admin.set_task_seconds("vzstop", 0.8)
    # First round: nothing learnt yet, each waiter checks on its own.
    assert wait_all(client, [client.start("pve1", v) for v in cts]) == ["OK"] * len(cts)
    assert fresh_guesses.get((client.endpoint, "pve1", "vzstart")) is not None
    wait_all(client, [client.stop("pve1", v) for v in cts])
    counts.clear()

    # Second round: a learnt guess, and one shared list poll for all ten waiters.
    assert wait_all(client, [client.start("pve1", v) for v in cts]) == ["OK"] * len(cts)
    per_task_status = counts["GET status"] / len(cts)
    assert per_task_status <= 3, counts  # the check at the guess (and a retry or two)
    # One list poll per interval, however many tasks wait (polling each task would
    # have cost 10 status calls per interval).
    polls = 0.8 / settings.PROXMOX_TASK_POLL_INTERVAL
    assert counts["GET list"] <= 1.5 * polls + 3, counts
    assert all(client.container_status("pve1", v)["status"] == "running" for v in cts)


def test_a_failed_task_raises_its_text_through_the_shared_wait(
    sim: Any, cts: list[int], fresh_guesses: DurationGuess
) -> None:
    client, _ = counting_client(sim)
    sim.admin.fail_next_tasks("vzstart", count=1, message="startup for container '9101' failed")
    with pytest.raises(TaskFailed, match="startup for container '9101' failed"):
        client.wait_task(client.start("pve1", cts[0]))


def test_the_wait_ends_even_when_the_task_list_cannot_be_read(
    sim: Any, cts: list[int], fresh_guesses: DurationGuess
) -> None:
    client, counts = counting_client(sim)
    sim.admin.set_task_seconds("vzstart", 0.6)
    # A guess far too short, so that the waits outlast it and turn to the shared poll.
    fresh_guesses.learn((client.endpoint, "pve1", "vzstart"), took=0.05, outcome="early")
    sim.admin.fail_next_requests("GET", r"^/nodes/pve1/tasks$", count=50, status=500, reason="boom")
    upids = [client.start("pve1", v) for v in cts[:3]]
    assert wait_all(client, upids) == ["OK"] * 3
    assert counts["GET list"] >= 1  # it was tried, failed, and each waiter asked itself


def test_a_lone_wait_within_its_guess_makes_no_list_poll(
    sim: Any, cts: list[int], fresh_guesses: DurationGuess
) -> None:
    client, counts = counting_client(sim)
    sim.admin.set_task_seconds("vzstart", 0.5)
    fresh_guesses.learn((client.endpoint, "pve1", "vzstart"), took=0.6, outcome="early")
    assert client.wait_task(client.start("pve1", cts[0])) == "OK"
    assert counts["GET status"] == 1 and counts["GET list"] == 0, counts
