"""The deploy key: made once, private half 0600 in a 0700 directory, a real OpenSSH key
that ssh-keygen reads, the same public half for every caller."""

from __future__ import annotations

import stat
import subprocess
import threading
from pathlib import Path

from containers.deploy_key import deploy_key_path, deploy_public_key
from tests.conftest import need_binary


def test_the_key_is_made_once_private_and_readable_by_ssh(settings, tmp_path: Path) -> None:
    settings.DEPLOY_KEY_DIR = tmp_path / "deploy-key"
    paths: list[Path] = []
    threads = [threading.Thread(target=lambda: paths.append(deploy_key_path())) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    private = paths[0]
    assert len(paths) == 8 and set(paths) == {private}
    assert stat.S_IMODE(private.stat().st_mode) == 0o600
    assert stat.S_IMODE(private.parent.stat().st_mode) == 0o700
    assert sorted(p.name for p in private.parent.iterdir()) == ["id_ed25519", "id_ed25519.pub"]
    public = deploy_public_key()
    assert public.startswith("ssh-ed25519 ") and public.endswith(" cluster-portal-deploy")
    derived = subprocess.run(
        [need_binary("ssh-keygen"), "-y", "-f", str(private)],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()[:2]
    assert derived == public.split()[:2]
    assert deploy_public_key() == public  # made once
