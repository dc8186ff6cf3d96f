"""Bad input to container_create: a clear error, nothing allocated, nothing queued."""

from __future__ import annotations

import pytest

from containers import services
from containers.models import Container, Job
from portal.errors import Conflict, ValidationFailed
from tests.factories import TemplateFactory, UserFactory, make_site

pytestmark = pytest.mark.django_db


@pytest.fixture
def site():
    return make_site(None)


@pytest.fixture
def owner():
    return UserFactory(username="alice")


BAD_HOSTNAMES = [
    "",
    "-web",
    "web-",
    "we_b",
    "web.example",
    "a" * 64,
    "web\nserver",
    "web;",
    "web{",
    "we b",
    "web$x",
    "web#",
    "w\u0435b",  # a Cyrillic lookalike of "e"
    "'web'",
    "portal",
    "admin",
    "1234",
]


@pytest.mark.parametrize("hostname", BAD_HOSTNAMES)
def test_hostnames_that_are_not_dns_labels_are_refused(site, owner, hostname: str) -> None:
    with pytest.raises(ValidationFailed) as info:
        services.container_create(owner=owner, hostname=hostname, template=site.templates.get())
    assert info.value.extra.get("field") == "hostname"
    assert "hostname" in info.value.message
    assert Container.objects.count() == 0 and Job.objects.count() == 0


def test_uppercase_ascii_is_folded(site, owner) -> None:
    job = services.container_create(owner=owner, hostname="MyApp", template=site.templates.get())
    assert job.container.hostname == "myapp"


def test_duplicate_hostname_is_a_conflict_with_nothing_allocated(site, owner) -> None:
    services.container_create(owner=owner, hostname="web", template=site.templates.get())
    with pytest.raises(Conflict, match="hostname 'web' is already taken") as info:
        services.container_create(
            owner=UserFactory(username="bob"), hostname="web", template=site.templates.get()
        )
    assert info.value.code == "hostname_taken"
    assert Container.objects.count() == 1 and Job.objects.count() == 1


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("cores", 5, "cores 5 is outside 1-4 allowed for template debian-12"),
        ("cores", 0, "cores 0 is outside 1-4"),
        ("memory_mib", 9000, "memory 9000 MiB is outside 64-8192 MiB"),
        ("swap_mib", 5000, "swap 5000 MiB is outside 0-4096 MiB"),
        ("disk_gib", 65, "disk 65 GiB is outside 1-64 GiB"),
    ],
)
def test_resources_above_the_templates_maximum_are_refused(
    site, owner, field: str, value: int, message: str
) -> None:
    with pytest.raises(ValidationFailed, match=message):
        services.container_create(
            owner=owner, hostname="web", template=site.templates.get(), **{field: value}
        )
    assert Container.objects.count() == 0


def test_disabled_template_is_refused(site, owner) -> None:
    template = TemplateFactory(
        site=site, name="old", volid="local:vztmpl/old.tar.gz", enabled=False
    )
    with pytest.raises(ValidationFailed, match="template old is not offered any more"):
        services.container_create(owner=owner, hostname="web", template=template)


def test_bad_ssh_keys_are_refused(site, owner) -> None:
    with pytest.raises(ValidationFailed, match="unsupported SSH key type"):
        services.container_create(
            owner=owner,
            hostname="web",
            template=site.templates.get(),
            ssh_public_keys="ssh-dss AAAAB3NzaC1kc3M= old",
        )
    with pytest.raises(ValidationFailed, match="not valid base64"):
        services.container_create(
            owner=owner,
            hostname="web",
            template=site.templates.get(),
            ssh_public_keys="ssh-ed25519 !!!notbase64 x",
        )
    assert Container.objects.count() == 0


def test_allocation_gives_reserved_ip_mac_and_parity_node(site, owner) -> None:
    jobs = [
        services.container_create(owner=owner, hostname=f"c{i}", template=site.templates.get())
        for i in range(4)
    ]
    got = [(j.container.vmid, j.container.node.name, j.container.ip) for j in jobs]
    assert got == [
        (100, "pve2", "10.15.1.0"),
        (101, "pve1", "10.15.1.1"),
        (102, "pve2", "10.15.1.2"),
        (103, "pve1", "10.15.1.3"),
    ]
    assert jobs[0].container.mac == f"02:{site.pk & 0xFF:02X}:0A:0F:01:00"
    assert all(j.status == "queued" and j.kind == "create" for j in jobs)


def test_manage_command_rejects_unknown_template_with_one_line(site, owner) -> None:
    from django.core.management import CommandError, call_command

    with pytest.raises(CommandError, match=r"no template 'nope' on local \(available: debian-12\)"):
        call_command(
            "containers", "create", "--owner", "alice", "--hostname", "web", "--template", "nope"
        )
