"""No internals in what users read (issue #12, item 10): no setting or field names, no
row numbers, no operator commands; one quota statement for those quotas do not limit;
the admin's help texts and names as written.

The job-log case, run against the simulator; the others, and the helpers, are in
tests/unit/accounts/test_wording.py.
"""

from __future__ import annotations

from typing import Any

import pytest

from containers import services
from tests.factories import UserFactory
from tests.functional.accounts.conftest import job_log, run_job
from tests.unit.accounts.test_wording import SETTING

pytestmark = pytest.mark.django_db


# -- job logs --------------------------------------------------------------------------------------
@pytest.mark.parametrize("proxmox_access", [True, False])
def test_job_logs_name_no_settings(pve: Any, cluster: Any, settings: Any, proxmox_access) -> None:
    """Without a directory, with Proxmox grants off, and with the gateway not waited for
    (the test settings): each step says why it is left out, in words."""
    settings.PROXMOX_ACCESS_ENABLED = proxmox_access
    owner = UserFactory(username=f"plain{int(proxmox_access)}")
    job = run_job(
        services.container_create(
            owner=owner, hostname=f"plain{int(proxmox_access)}", template=cluster.templates.get()
        )
    )
    log = job_log(job)
    assert job.status == "succeeded", log
    assert "no ldap directory is configured" in log.lower()
    assert "this portal does not wait for it" in log
    if not proxmox_access:
        assert "Proxmox access grants are turned off on this portal" in log
    assert SETTING.findall(log) == [], log
