"""Deterministic factories (sequences, no randomness) for the tests."""

from __future__ import annotations

from typing import Any

import factory
from django.contrib.auth import get_user_model

from containers.models import Template
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
