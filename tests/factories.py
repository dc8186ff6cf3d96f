"""Deterministic factories (sequences, no randomness) for the tests."""

from __future__ import annotations

from typing import Any

import factory
from django.contrib.auth import get_user_model

from containers.models import Container, ContainerStatus, Template
from networking.models import Node, NodeState, Site

DEBIAN_VOLID = "local:vztmpl/debian-12-standard_12.7-1_amd64.tar.zst"


class UserFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = get_user_model()
        django_get_or_create = ("username",)

    username = factory.Sequence(lambda n: f"user{n}")
    email = factory.LazyAttribute(lambda u: f"{u.username}@example.test")


class SiteFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Site
        django_get_or_create = ("slug",)

    name = "Local"
    slug = "local"
    domain = "apps.example.test"
    internal_domain = "cluster.example.test"


class NodeFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Node

    site = factory.SubFactory(SiteFactory)
    name = factory.Sequence(lambda n: f"pve{n + 1}")
    api_url = "https://127.0.0.1:8006"
    token_id = "portal@pve!portal"
    token_secret = "secret"
    slot = factory.Sequence(lambda n: n)
    state = NodeState.ACTIVE


class TemplateFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Template
        django_get_or_create = ("site", "name")

    site = factory.SubFactory(SiteFactory)
    name = "debian-12"
    display_name = "Debian 12"
    volid = DEBIAN_VOLID
    default_cores = 1
    default_memory_mib = 512
    default_swap_mib = 512
    default_disk_gib = 4
    max_cores = 4
    max_memory_mib = 8192
    max_swap_mib = 4096
    max_disk_gib = 64


def make_site(
    sim: Any | None = None, *, node_names: tuple[str, ...] = ("pve2", "pve1"), **site_fields: Any
) -> Site:
    """A site whose nodes point at the simulator; node_names[i] gets slot i (pve2 even, pve1 odd)."""
    site = SiteFactory(**site_fields)
    for slot, name in enumerate(node_names):
        Node.objects.create(
            site=site,
            name=name,
            slot=slot,
            api_url=sim.url if sim else "https://127.0.0.1:8006",
            token_id=sim.token_id if sim else "portal@pve!portal",
            token_secret=sim.token_secret if sim else "secret",
            ca_bundle=str(sim.ca_path) if sim else "",
        )
    TemplateFactory(site=site)
    return site


def make_access_world() -> dict[str, Any]:
    """The cast of the authorization matrices: a running container `app` of `owner` with
    `collab` as collaborator, and `other`, `bystander` and `staff`; a quota request of the
    owner's. Returns the objects the matrices address."""
    from auth.models import Collaborator
    from containers import services
    from containers.resource_requests import resource_request_create

    site = make_site(None)
    owner = UserFactory(username="owner")
    collab = UserFactory(username="collab")
    UserFactory(username="other")
    UserFactory(username="bystander")
    UserFactory(username="staff", is_staff=True)
    job = services.container_create(owner=owner, hostname="app", template=site.templates.get())
    container = job.container
    Collaborator.objects.create(container=container, user=collab, added_by=owner)
    services.container_set_status(container=container, to="provisioning")
    services.container_set_status(container=container, to="running")
    job.status = "succeeded"
    job.save(update_fields=["status"])
    request = resource_request_create(
        user=owner, kind="quota", reason="room for a course project", limits={"max_containers": 8}
    )
    return {
        "site": site,
        "owner": owner,
        "container": container,
        "job": job,
        "request": request,
    }


def make_failed_create(owner: Any, hostname: str, site: Any) -> Any:
    """A container whose create job failed and was cleaned up, as the runner leaves it."""
    from containers import services
    from containers.models import ContainerStatus, JobStatus

    job = services.container_create(owner=owner, hostname=hostname, template=site.templates.get())
    services.container_set_status(
        container=job.container, to=ContainerStatus.DELETED, message="creation failed"
    )
    job.status = JobStatus.FAILED
    job.error = f"Creating {hostname} failed at step 'Create': storage full"
    job.error_code = "proxmox_error"
    job.save(update_fields=["status", "error", "error_code"])
    return job.container


def make_containers(
    site: Any, count: int, *, first_vmid: int = 1000, owner: Any | None = None
) -> list[Container]:
    """`count` running containers straight into the database (no job), VMIDs from
    `first_vmid`, alternating between the site's two nodes by slot; `owner`'s, or a new
    user's. The IP and MAC follow the VMID, so that batches of one site never collide."""
    owner = owner or UserFactory()
    template = site.templates.get()
    nodes = {n.slot: n for n in site.nodes.all()}
    vmids = range(first_vmid, first_vmid + count)
    return Container.objects.bulk_create(
        Container(
            site=site,
            node=nodes[vmid % 2],
            vmid=vmid,
            hostname=f"m{vmid}",
            owner=owner,
            template=template,
            cores=2,
            memory_mib=512,
            swap_mib=512,
            disk_gib=8,
            ip=f"10.{15 + vmid // 62500}.{vmid // 250 % 250 + 1}.{vmid % 250 + 1}",
            mac="bc:24:11:" + ":".join(f"{vmid >> s & 255:02x}" for s in (16, 8, 0)),
            status=ContainerStatus.RUNNING,
        )
        for vmid in vmids
    )
