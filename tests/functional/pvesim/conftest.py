"""Fixtures for the pvesim suite. No Django: these run with ``-p no:django``
and also inside the project's Django test run (no ``db`` fixture)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from proxmoxer import ProxmoxAPI

from pvesim.access import TicketAuthority
from pvesim.testing import SimAdmin, SimulatorThread
from pvesim.tls import ensure_tls
from tests.functional.pvesim.helpers import ROOT_PASSWORD, TOKEN_ID, create_ct, seed_keys
from tests.functional.pvesim.metrics_world import NOBODY, VMUSER, client


@pytest.fixture(scope="session")
def pve_keys(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """TLS and ticket keys made once, copied into every simulator's state dir."""
    base = tmp_path_factory.mktemp("pvesim-keys")
    ensure_tls(base, "127.0.0.1", ("pve1", "pve2"))
    TicketAuthority(base)
    return base


@pytest.fixture
def pve_sim(tmp_path: Path, pve_keys: Path) -> Iterator[SimulatorThread]:
    state_dir = tmp_path / "sim"
    seed_keys(pve_keys, state_dir)
    sim = SimulatorThread(
        state_dir,
        tokens={TOKEN_ID: str(uuid.uuid4())},
        users={"root@pam": ROOT_PASSWORD},
        task_seconds=0.05,
        auth_delay=0.0,
        lock_timeout=0.3,
    )
    with sim:
        yield sim


@pytest.fixture
def sim_admin(pve_sim: SimulatorThread) -> SimAdmin:
    return pve_sim.admin


@pytest.fixture
def pve(pve_sim: SimulatorThread) -> ProxmoxAPI:
    """proxmoxer with API token auth, verifying the simulator's CA."""
    return pve_sim.proxmox()


@pytest.fixture
def pve_ticket(pve_sim: SimulatorThread) -> ProxmoxAPI:
    """proxmoxer with ticket (password) auth."""
    return ProxmoxAPI(
        pve_sim.host,
        port=pve_sim.port,
        user="root@pam",
        password=ROOT_PASSWORD,
        verify_ssl=str(pve_sim.ca_path),
    )


@pytest.fixture
def http(pve_sim: SimulatorThread) -> requests.Session:
    """A raw session (token auth) for checks proxmoxer hides (status lines, bodies)."""
    s = requests.Session()
    s.trust_env = False  # REQUESTS_CA_BUNDLE would override verify
    s.verify = str(pve_sim.ca_path)
    s.headers["Authorization"] = f"PVEAPIToken={pve_sim.token_id}={pve_sim.token_secret}"
    return s


# -- one simulator per metrics module (test_metrics_api.py, test_metrics_resources.py) --


@pytest.fixture(scope="module")
def metrics_sim(
    tmp_path_factory: pytest.TempPathFactory, pve_keys: Path
) -> Iterator[SimulatorThread]:
    """A frozen clock two hours after CT 105 (running, pool `web`, 2 cores, 1 GiB) and
    CT 106 (stopped) were made on pve1, with a running qemu guest 1000 on pve2; tokens:
    the portal's (every privilege), VMUSER (PVEVMUser on /) and NOBODY (NoAccess on /)."""
    state_dir = tmp_path_factory.mktemp("metrics") / "sim"
    seed_keys(pve_keys, state_dir)
    tokens = {
        TOKEN_ID: str(uuid.uuid4()),
        VMUSER: f"{uuid.uuid4()}:PVEVMUser",
        NOBODY: f"{uuid.uuid4()}:NoAccess",
    }
    with SimulatorThread(state_dir, tokens=tokens, task_seconds=0.05, lock_timeout=0.3) as sim:
        api = sim.proxmox()
        sim.admin.create_pool("web")
        create_ct(api, 105, start=1, pool="web", tags="metrics;web", cores=2)
        create_ct(api, 106)
        sim.admin.create_foreign_guest("pve2", 1000, type="qemu", status="running")
        sim.admin.set_manual_clock()
        sim.admin.advance_clock(2 * 3600)
        yield sim


@pytest.fixture(scope="module")
def metrics_admin(metrics_sim: SimulatorThread) -> SimAdmin:
    return metrics_sim.admin


@pytest.fixture(scope="module")
def metrics_api(metrics_sim: SimulatorThread) -> ProxmoxAPI:
    return client(metrics_sim, TOKEN_ID)


@pytest.fixture(scope="module")
def vmuser_api(metrics_sim: SimulatorThread) -> ProxmoxAPI:
    return client(metrics_sim, VMUSER)


@pytest.fixture(scope="module")
def nobody_api(metrics_sim: SimulatorThread) -> ProxmoxAPI:
    return client(metrics_sim, NOBODY)
