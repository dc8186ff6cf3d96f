"""`portalctl containers list --all` against the real server (gunicorn, deploy/gunicorn.conf.py):
the cursor walks the whole list at its largest page while another process's worth of
containers are created and deleted underneath, and each container that existed all along
comes out once (issue #18). The API's cursor is tested piece by piece in
tests/unit/containers/test_api_cursor.py."""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from django.db import connection

from auth.models import Collaborator
from containers.models import Container, ContainerStatus
from tests.factories import UserFactory, make_containers

from .conftest import Cli, user_with_token

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True), pytest.mark.timeout(180)]

ROOT = Path(__file__).resolve().parents[3]
MANY = 2_150  # three pages of 1,000


class Churn:
    """Creates and deletes the user's containers in a thread of its own, as fast as the
    database lets it, until stopped: new VMIDs both below and above the listed ones,
    and deletes of the `doomed` ones (listed or not yet)."""

    def __init__(self, site: Any, owner: Any, doomed: list[Container]) -> None:
        self.site, self.owner, self.doomed = site, owner, doomed
        self.deleted: set[int] = set()
        self.created: set[int] = set()
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        try:
            n = 0
            while not self.stop.is_set():
                for vmid in (500 + n, 90_000 + n):  # behind the walk, and ahead of it
                    self.created.add(
                        make_containers(self.site, 1, first_vmid=vmid, owner=self.owner)[0].pk
                    )
                if n < len(self.doomed):
                    victim = self.doomed[n]
                    Container.objects.filter(pk=victim.pk).update(status=ContainerStatus.DELETED)
                    self.deleted.add(victim.pk)
                n += 1
                self.stop.wait(0.005)
        finally:
            connection.close()

    def __enter__(self) -> Churn:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.thread.join(timeout=30)


@pytest.fixture
def world(cluster: Any) -> dict[str, Any]:
    """MANY containers of the user's, one of another's shared with them, and others'."""
    user, token = user_with_token("walker", scope="read")
    mine = make_containers(cluster, MANY, first_vmid=10_000, owner=user)
    others = make_containers(cluster, 30, first_vmid=20_000, owner=UserFactory(username="other"))
    Collaborator.objects.create(container=others[3], user=user)
    return {"user": user, "token": token, "mine": mine, "others": others, "site": cluster}


def test_list_all_walks_every_container_once_while_others_come_and_go(
    cli: Cli, world: dict[str, Any]
) -> None:
    cli.env.update(
        PORTAL_URL=cli.url,
        PORTAL_TOKEN=world["token"],
        PYTHONPATH=str(ROOT / "portalctl" / "src"),  # this checkout's client
    )
    mine, others = world["mine"], world["others"]
    doomed = mine[::97]  # spread over every page
    with Churn(world["site"], world["user"], doomed) as churn:
        listed = json.loads(cli.ok("containers", "list", "--all", "--json").stdout)
    ids = [c["id"] for c in listed]
    assert len(ids) == len(set(ids)), "a container was listed twice"
    throughout = {c.pk for c in mine} - churn.deleted | {others[3].pk}
    assert throughout <= set(ids), f"{len(throughout - set(ids))} missed"
    assert set(ids) <= throughout | churn.deleted | churn.created  # nobody else's
    assert not {c.pk for c in others} - {others[3].pk} & set(ids)
    assert churn.deleted and churn.created  # the walk really ran among changes
    vmids = [c["vmid"] for c in listed]
    assert vmids == sorted(vmids)  # by site and VMID: one site here


def test_list_shows_the_first_200_and_filters_walk_too(cli: Cli, world: dict[str, Any]) -> None:
    cli.env.update(
        PORTAL_URL=cli.url,
        PORTAL_TOKEN=world["token"],
        PYTHONPATH=str(ROOT / "portalctl" / "src"),
    )
    mine = world["mine"]
    first = cli.ok("containers", "list", "--json")
    assert [c["id"] for c in json.loads(first.stdout)] == [c.pk for c in mine[:200]]
    assert "the first 200 shown; there are more: --all" in first.stderr
    stopped = mine[5::400]
    Container.objects.filter(pk__in=[c.pk for c in stopped]).update(status=ContainerStatus.STOPPED)
    only = json.loads(cli.ok("containers", "list", "--all", "--status", "stopped", "--json").stdout)
    assert [c["id"] for c in only] == [c.pk for c in stopped]
    table = cli.ok("containers", "list", "--limit", "3").stdout
    assert mine[2].hostname in table and mine[3].hostname not in table
    assert cli("containers", "list", "--all", "--limit", "3").returncode == 2


def test_the_api_walk_under_concurrent_changes_page_by_page(
    world: dict[str, Any], web: str
) -> None:
    """The same through the API alone with small pages (many of them), so that the
    changes land between most pages, on the shipped server and this run's database."""
    headers = {"Authorization": f"Bearer {world['token']}"}
    seen: list[int] = []
    pages = 0
    with (
        httpx.Client(base_url=web, headers=headers, timeout=30) as http,
        Churn(world["site"], world["user"], world["mine"][::13]) as churn,
    ):
        cursor = ""
        while True:
            response = http.get("/api/v1/containers/", params={"cursor": cursor, "page_size": 40})
            assert response.status_code == 200, response.text
            body = response.json()
            seen += [c["id"] for c in body["results"]]
            pages += 1
            if body["next"] is None:
                break
            cursor = parse_qs(urlsplit(body["next"]).query)["cursor"][0]
    assert pages > 50 and len(churn.deleted) > 20
    assert len(seen) == len(set(seen)), "a container was listed twice"
    throughout = {c.pk for c in world["mine"]} - churn.deleted | {world["others"][3].pk}
    assert throughout <= set(seen), f"{len(throughout - set(seen))} missed"
