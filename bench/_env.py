"""Shared by the benches: a private environment (database, Redis, simulator, workers)."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any


def setup_django(run_dir: Path, **extra: str) -> dict[str, str]:
    """Configure Django for a bench in its own directory; returns the env for child processes."""
    env = {
        "SECRET_KEY": "bench-secret",
        "FIELD_ENCRYPTION_KEYS": "Zm9yLXRlc3RzLW9ubHktMzItYnl0ZXMta2V5LWhlcmU=",
        "PORTAL_VAR_DIR": str(run_dir / "var"),
        "LOG_LEVEL": "WARNING",
        "SECURE_SSL_REDIRECT": "false",
        # Benches measure speed, not policy: no default quota.
        **{
            f"QUOTA_DEFAULT_{name}": ""
            for name in (
                "CONTAINERS",
                "CORES",
                "MEMORY_MIB",
                "SWAP_MIB",
                "DISK_GIB",
                "CONTAINER_CORES",
                "CONTAINER_MEMORY_MIB",
                "CONTAINER_SWAP_MIB",
                "CONTAINER_DISK_GIB",
                "ROUTES",
                "PORTS",
                "CONTAINER_ROUTES",
                "CONTAINER_PORTS",
            )
        },
        **extra,
    }
    if os.environ.get("DATABASE_URL"):
        env["DATABASE_URL"] = fresh_postgres_database(os.environ["DATABASE_URL"], suffix="_bench")
    else:
        env["DATABASE_URL"] = f"sqlite:///{run_dir / 'bench.sqlite3'}"
    os.environ.update(env)
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "portal.settings")
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", interactive=False, verbosity=0)
    return {**env, "DATABASE_URL": os.environ["DATABASE_URL"]}


def run_dir(prefix: str) -> Path:
    return Path(tempfile.mkdtemp(prefix=f"bench-{prefix}-"))


def fresh_postgres_database(url: str, *, suffix: str) -> str:
    """A new, empty database beside the one in `url`, so a bench never touches real data."""
    from urllib.parse import urlsplit, urlunsplit

    import psycopg

    parts = urlsplit(url)
    name = parts.path.lstrip("/") + suffix
    admin = urlunsplit(parts._replace(path="/postgres"))
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}"')
        conn.execute(f'CREATE DATABASE "{name}"')
    return urlunsplit(parts._replace(path=f"/{name}"))


def process_cpu_seconds(pid: int) -> float:
    """User + system CPU of a process (all its threads) and its reaped children."""
    with open(f"/proc/{pid}/stat", encoding="ascii") as fh:
        fields = fh.read().rsplit(")", 1)[1].split()
    ticks = os.sysconf("SC_CLK_TCK")
    return sum(int(fields[i]) for i in (11, 12, 13, 14)) / ticks


def seed_site(sim: Any, secret: str) -> tuple[Any, Any]:
    """The bench's site on the simulator's two nodes, a small template and its owner."""
    from django.contrib.auth.models import User

    from containers.models import Template
    from networking.models import Site

    site = Site.objects.create(
        name="Bench", slug="bench", domain="apps.bench.test", internal_domain="cluster.bench.test"
    )
    add_nodes(site, sim, secret)
    template = Template.objects.create(
        site=site,
        name="debian-12",
        display_name="Debian 12",
        volid="local:vztmpl/debian-12-standard_12.7-1_amd64.tar.zst",
        # Small, so that every round fits on the simulated nodes' storage and memory.
        default_memory_mib=128,
        default_disk_gib=1,
    )
    return template, User.objects.create(username="bench")


def add_nodes(site: Any, sim: Any, secret: str) -> None:
    """The simulator's pve1 (slot 1, odd VMIDs) and pve2 (slot 0) as `site`'s nodes."""
    from networking.models import Node

    for name, slot in (("pve2", 0), ("pve1", 1)):
        Node.objects.create(
            site=site,
            name=name,
            slot=slot,
            api_url=sim.url,
            token_id="portal@pve!portal",
            token_secret=secret,
            ca_bundle=str(sim.ca_path),
        )
