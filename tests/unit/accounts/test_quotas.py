"""Quotas: each limit, the most generous group winning, resizes, overrides, and resource
requests approved (applied) or denied."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.contrib.auth.models import Group
from django.utils import timezone

from auth import quota_overrides
from auth.models import AuditEntry, GroupPolicy, QuotaOverride, RequestStatus
from containers import resource_requests, services
from containers.models import Container, Job
from containers.selectors import user_quota
from portal.errors import InvalidState, PermissionDenied, QuotaExceeded, ValidationFailed
from tests.factories import UserFactory, make_site

pytestmark = pytest.mark.django_db


@pytest.fixture
def site():
    return make_site()


def policy(group: str | None = None, **limits) -> GroupPolicy:
    g = Group.objects.get_or_create(name=group)[0] if group else None
    return GroupPolicy.objects.create(group=g, **limits)


def member(user, *groups: str):
    for name in groups:
        user.groups.add(Group.objects.get_or_create(name=name)[0])
    return user


def settle(c: Container, status: str = "running") -> Container:
    """As if the create job had run: the job finished, the container in `status`."""
    Job.objects.filter(container=c).update(status="succeeded")
    Container.objects.filter(pk=c.pk).update(status=status)
    c.refresh_from_db()
    return c


def make(site, owner, hostname, **res) -> Container:
    return services.container_create(
        owner=owner, hostname=hostname, template=site.templates.get(), **res
    ).container


@pytest.mark.parametrize(
    ("limits", "existing", "request_", "message"),
    [
        (
            {"max_containers": 2},
            [{}, {}],
            {},
            "quota exceeded: containers 2 in use + 1 requested > 2 allowed by the default policy",
        ),
        (
            {"max_cores": 3},
            [{"cores": 2}],
            {"cores": 2},
            "quota exceeded: cores 2 in use + 2 requested > 3 allowed by the default policy",
        ),
        (
            {"max_memory_mib": 2048},
            [{"memory_mib": 1024}],
            {"memory_mib": 1536},
            "quota exceeded: memory 1024 MiB in use + 1536 requested > 2048 allowed by the default policy",
        ),
        (
            {"max_swap_mib": 1024},
            [{"swap_mib": 512}],
            {"swap_mib": 1024},
            "quota exceeded: swap 512 MiB in use + 1024 requested > 1024 allowed by the default policy",
        ),
        (
            {"max_disk_gib": 20},
            [{"disk_gib": 16}],
            {"disk_gib": 8},
            "quota exceeded: disk 16 GiB in use + 8 requested > 20 allowed by the default policy",
        ),
        (
            {"max_container_cores": 2},
            [],
            {"cores": 3},
            "quota exceeded: cores 3 for one container > 2 allowed by the default policy",
        ),
        (
            {"max_container_memory_mib": 1024},
            [],
            {"memory_mib": 2048},
            "quota exceeded: memory 2048 MiB for one container > 1024 allowed by the default policy",
        ),
        (
            {"max_container_swap_mib": 256},
            [],
            {"swap_mib": 512},
            "quota exceeded: swap 512 MiB for one container > 256 allowed by the default policy",
        ),
        (
            {"max_container_disk_gib": 10},
            [],
            {"disk_gib": 12},
            "quota exceeded: disk 12 GiB for one container > 10 allowed by the default policy",
        ),
    ],
)
def test_each_limit_is_enforced_on_create(site, limits, existing, request_, message) -> None:
    policy(None, **limits)
    owner = UserFactory()
    for i, res in enumerate(existing):
        make(site, owner, f"c{i}", **res)
    before = Container.objects.count()
    with pytest.raises(QuotaExceeded) as err:
        make(site, owner, "over", **request_)
    assert str(err.value) == message
    assert err.value.code == "quota_exceeded" and err.value.http_status == 409
    assert Container.objects.count() == before  # nothing allocated, nothing queued
    assert not Job.objects.filter(container__hostname="over").exists()


def test_the_message_names_the_limit_the_use_and_the_request(site) -> None:
    policy(None, max_memory_mib=4096)
    policy("students", max_memory_mib=8192)
    carol = member(UserFactory(username="carol"), "students")
    make(site, carol, "big", memory_mib=6144)
    with pytest.raises(QuotaExceeded) as err:
        make(site, carol, "more", memory_mib=4096)
    assert str(err.value) == (
        "quota exceeded: memory 6144 MiB in use + 4096 requested > 8192 allowed by group students"
    )
    assert err.value.extra == {
        "limit": "max_memory_mib",
        "field": "memory_mib",
        "in_use": 6144,
        "requested": 4096,
        "allowed": 8192,
        "source": "group students",
    }


def test_the_most_generous_group_wins_limit_by_limit(site) -> None:
    policy(None, max_containers=1, max_memory_mib=1024)
    policy("students", max_containers=3, max_memory_mib=2048)
    policy("researchers", max_containers=2, max_memory_mib=8192)
    dave = member(UserFactory(username="dave"), "students", "researchers")
    quota = user_quota(dave)
    assert quota.limits["max_containers"].value == 3
    assert quota.limits["max_containers"].source == "group students"
    assert quota.limits["max_memory_mib"].value == 8192
    assert quota.limits["max_memory_mib"].source == "group researchers"
    make(site, dave, "a", memory_mib=4096)
    make(site, dave, "b", memory_mib=2048)
    make(site, dave, "c", memory_mib=1024)
    with pytest.raises(QuotaExceeded, match="containers 3 in use"):
        make(site, dave, "d", memory_mib=512)
    # Someone in no group gets the default.
    plain = UserFactory()
    make(site, plain, "p1", memory_mib=512)
    with pytest.raises(QuotaExceeded, match="allowed by the default policy"):
        make(site, plain, "p2", memory_mib=512)


def test_a_resize_past_the_limit_is_refused_and_within_it_accepted(site) -> None:
    policy(None, max_memory_mib=4096, max_container_memory_mib=4096)
    owner = UserFactory()
    a = make(site, owner, "a", memory_mib=2048)
    make(site, owner, "b", memory_mib=1024)
    settle(a, "running")
    with pytest.raises(QuotaExceeded) as err:
        services.container_resize(container=a, actor=owner, memory_mib=4096)
    assert str(err.value) == (
        "quota exceeded: memory 3072 MiB in use + 2048 requested > 4096 allowed by the default policy"
    )
    assert not a.jobs.filter(kind="resize").exists()
    job = services.container_resize(container=a, actor=owner, memory_mib=3072)
    assert job.kind == "resize" and job.params["memory_mib"] == 3072
    # A resize in progress counts at its new size: nothing is left for another one.
    assert user_quota(owner).usage.memory_mib == 4096


def test_shrinking_is_allowed_even_over_quota(site) -> None:
    owner = UserFactory()
    a = make(site, owner, "a", memory_mib=4096, cores=2)
    settle(a, "stopped")
    policy(None, max_memory_mib=1024, max_container_memory_mib=1024)  # tightened afterwards
    assert services.container_resize(container=a, actor=owner, memory_mib=2048).kind == "resize"


def test_overrides_raise_limits_until_they_expire(site) -> None:
    policy(None, max_containers=1)
    owner = UserFactory()
    staff = UserFactory(is_staff=True)
    make(site, owner, "a")
    override = quota_overrides.quota_override_create(
        user=owner, actor=staff, reason="course project", limits={"max_containers": 2}
    )
    assert user_quota(owner).limits["max_containers"].source == override.label
    make(site, owner, "b")
    QuotaOverride.objects.filter(pk=override.pk).update(
        expires_at=timezone.now() - timedelta(days=1)
    )
    with pytest.raises(
        QuotaExceeded, match=r"containers 2 in use \+ 1 requested > 1 allowed by the default policy"
    ):
        make(site, owner, "c")
    assert AuditEntry.objects.filter(action="quota.override").count() == 1


def test_staff_are_exempt_and_quota_status_is_there_before_submitting(site) -> None:
    policy(None, max_containers=1, max_cores=2)
    staff = UserFactory(is_staff=True)
    make(site, staff, "s1")
    make(site, staff, "s2")
    owner = UserFactory()
    make(site, owner, "o1", cores=1)
    status = user_quota(owner).as_dict()
    assert status["exempt"] is False
    assert status["usage"]["containers"] == 1 and status["usage"]["cores"] == 1
    assert status["limits"]["max_cores"] == {"value": 2, "source": "the default policy"}
    assert status["remaining"]["max_cores"] == 1 and status["remaining"]["max_containers"] == 0
    assert user_quota(staff).exempt is True


def test_a_quota_request_approved_applies_itself(site) -> None:
    policy(None, max_containers=1)
    owner = UserFactory()
    staff = UserFactory(is_staff=True)
    make(site, owner, "a")
    req = resource_requests.resource_request_create(
        user=owner,
        kind="quota",
        reason="I run two services for my thesis",
        limits={"max_containers": 2},
    )
    assert req.status == RequestStatus.PENDING
    with pytest.raises(PermissionDenied):
        resource_requests.resource_request_approve(request=req, actor=owner)
    req = resource_requests.resource_request_approve(
        request=req, actor=staff, note="ok for the term"
    )
    assert req.status == RequestStatus.APPROVED and req.override is not None
    assert req.outcome.startswith("approved: your quota now allows")
    make(site, owner, "b")  # the override is in force
    with pytest.raises(InvalidState, match="already approved"):
        resource_requests.resource_request_approve(request=req, actor=staff)
    actions = list(AuditEntry.objects.order_by("id").values_list("action", flat=True))
    assert "resource_request.create" in actions and "resource_request.approve" in actions
    assert "quota.override" in actions


def test_a_resize_request_approved_resizes_the_container(site) -> None:
    policy(None, max_memory_mib=2048, max_container_memory_mib=2048)
    owner = UserFactory()
    staff = UserFactory(is_staff=True)
    c = make(site, owner, "db", memory_mib=2048)
    settle(c, "running")
    with pytest.raises(QuotaExceeded):
        services.container_resize(container=c, actor=owner, memory_mib=6144)
    req = resource_requests.resource_request_create(
        user=owner, kind="resize", container=c, memory_mib=6144, reason="the database needs memory"
    )
    req = resource_requests.resource_request_approve(request=req, actor=staff)
    assert req.job is not None and req.job.kind == "resize" and req.job.params["memory_mib"] == 6144
    assert req.override.max_memory_mib == 6144 and req.override.max_container_memory_mib == 6144
    assert req.outcome.endswith("; db is being resized") and "override #" not in req.outcome


def test_a_denied_request_says_why_and_changes_nothing(site) -> None:
    owner = UserFactory()
    staff = UserFactory(is_staff=True)
    req = resource_requests.resource_request_create(
        user=owner, kind="quota", reason="I would like a lot more", limits={"max_cores": 64}
    )
    req = resource_requests.resource_request_deny(
        request=req, actor=staff, note="64 cores is the whole node"
    )
    assert (
        req.status == RequestStatus.DENIED and req.outcome == "denied: 64 cores is the whole node"
    )
    assert not QuotaOverride.objects.filter(user=owner).exists()
    assert AuditEntry.objects.filter(action="resource_request.deny", actor=staff).count() == 1


def test_bad_requests_are_refused_clearly(site) -> None:
    owner = UserFactory()
    with pytest.raises(ValidationFailed, match="why"):
        resource_requests.resource_request_create(
            user=owner, kind="quota", reason="pls", limits={"max_cores": 8}
        )
    with pytest.raises(ValidationFailed, match="unknown limits"):
        resource_requests.resource_request_create(
            user=owner, kind="quota", reason="a real reason here", limits={"max_gpus": 1}
        )
    other = make(site, UserFactory(), "theirs")
    from portal.errors import NotFound

    with pytest.raises(NotFound):
        resource_requests.resource_request_create(
            user=owner, kind="resize", container=other, cores=2, reason="not even mine but hey"
        )
