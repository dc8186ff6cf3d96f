"""portal/api/fast.py: the list serializers' shortcut gives DRF's own output, for the
container list as it is and for the values DRF treats specially."""

from __future__ import annotations

import datetime
import json
import zoneinfo
from types import SimpleNamespace
from typing import Any

import pytest
from django.db.models import TextChoices
from django.utils import timezone
from rest_framework import serializers

from containers import selectors
from containers.api.serializers import ContainerSerializer
from containers.metrics.models import AlertKind, ContainerAlert, ContainerSample
from containers.models import Container, Job, JobKind, JobStatus
from portal.api.fast import FastRepresentation
from tests.factories import UserFactory, make_containers, make_site


def drf(monkeypatch: pytest.MonkeyPatch, render: Any) -> Any:
    """What `render()` gives with DRF's own to_representation everywhere."""
    with monkeypatch.context() as m:
        m.setattr(FastRepresentation, "to_representation", serializers.Serializer.to_representation)
        return render()


@pytest.mark.django_db
@pytest.mark.parametrize("zone", ["UTC", "Europe/Paris", "America/St_Johns"])
def test_the_container_list_is_drfs_to_the_byte(monkeypatch: pytest.MonkeyPatch, zone: str) -> None:
    site = make_site(None)
    owner = UserFactory(username="alice")
    made = make_containers(site, 6, first_vmid=100, owner=owner)
    now = timezone.now()
    exact = now.replace(microsecond=0)
    Container.objects.filter(pk=made[0].pk).update(running_since=exact, expires_at=now)
    Container.objects.filter(pk=made[1].pk).update(
        expires_at=exact, expiry_stopped_at=now, status_message="stopped by its expiry"
    )
    for n, c in enumerate(made[:4]):
        ContainerSample.objects.create(
            container=c,
            sampled_at=now,
            pve_status="running",
            cpu=n / 3,
            cpus=2,
            mem=n << 20,
            maxmem=512 << 20,
            netin_rate=None if n % 2 else 1.5,
        )
    ContainerAlert.objects.create(
        container=made[2], kind=AlertKind.CPU, since=now, raised_at=now, value=1.0, message="x"
    )
    Job.objects.create(container=made[3], kind=JobKind.START, status=JobStatus.RUNNING)
    rows = selectors.containers_page(
        list(selectors.api_containers(owner, many=True).order_by("vmid"))
    )

    def render() -> Any:
        with timezone.override(zoneinfo.ZoneInfo(zone)):
            return ContainerSerializer(rows, many=True).data

    fast, slow = render(), drf(monkeypatch, render)
    assert json.dumps(fast) == json.dumps(slow)  # the same keys in the same order
    assert [type(v) for v in fast[0].values()] == [type(v) for v in slow[0].values()]
    assert fast[3]["active_job"] and fast[2]["alerts"] and fast[0]["metrics"]["cpu"] == 0.0


class Colour(TextChoices):
    RED = "red", "Red"


class Odd(serializers.Serializer):
    """Fields whose values DRF treats specially."""

    name = serializers.CharField()
    colour = serializers.CharField()  # a str subclass: DRF's str() of it
    count = serializers.IntegerField()
    big = serializers.IntegerField()  # a bool is an int subclass: DRF's int() of it
    ratio = serializers.FloatField()
    when = serializers.DateTimeField()
    naive = serializers.DateTimeField()
    dated = serializers.DateTimeField(format="%Y/%m/%d")
    fixed = serializers.DateTimeField(default_timezone=datetime.UTC)
    greeting = serializers.CharField()  # a method: DRF calls it
    missing = serializers.CharField(required=False)  # absent: DRF skips it
    fallback = serializers.CharField(default="dflt")  # absent: DRF's default
    nested = serializers.IntegerField(source="inner.value")
    nothing = serializers.CharField(allow_null=True)
    shout = serializers.SerializerMethodField()
    related = serializers.SlugRelatedField(slug_field="value", read_only=True, source="inner")
    unrelated = serializers.SlugRelatedField(slug_field="value", read_only=True, source="gone")
    deep = serializers.SlugRelatedField(slug_field="inner__value", read_only=True, source="outer")
    wide = serializers.BigIntegerField()
    wide_text = serializers.BigIntegerField(coerce_to_string=True)  # DRF's str() of it
    address = serializers.IPAddressField()
    choice = serializers.ChoiceField(choices=[("a", "A")])
    number_choice = serializers.ChoiceField(choices=[(1, "one")])  # "1" comes out as 1

    def get_shout(self, obj: Any) -> str:
        return str(obj.name).upper()


class FastOdd(FastRepresentation, Odd):
    pass


# Each object twice: the per-object batch of reads taken (plain values of their types, a
# relation present), and refused (a str subclass, a relation that is None).
@pytest.mark.parametrize(
    ("colour", "gone"), [(Colour.RED, None), ("red", SimpleNamespace(value="g"))]
)
def test_values_drf_treats_specially_come_out_as_drf_gives_them(
    monkeypatch: pytest.MonkeyPatch, colour: Any, gone: Any
) -> None:
    aware = datetime.datetime(2026, 3, 1, 10, 0, 0, 5, tzinfo=datetime.UTC)
    thing = SimpleNamespace(
        name="n",
        colour=colour,
        count=3,
        big=True,
        ratio=2,
        when=aware,
        naive=datetime.datetime(2026, 3, 1, 10, 0),
        dated=aware,
        fixed=aware.astimezone(zoneinfo.ZoneInfo("Asia/Tokyo")),
        greeting=lambda: "hello",
        inner=SimpleNamespace(value="7"),
        nothing=None,
        gone=gone,
        outer=SimpleNamespace(inner=SimpleNamespace(value=8)),
        wide=2**40,
        wide_text=2**40,
        address="10.15.0.7",
        choice="a",
        number_choice="1",
    )
    with timezone.override(zoneinfo.ZoneInfo("Europe/Paris")):
        fast = FastOdd(thing).data
        slow = drf(monkeypatch, lambda: FastOdd(thing).data)
    assert json.dumps(fast) == json.dumps(slow)
    assert [type(v) for v in fast.values()] == [type(v) for v in slow.values()]
    assert fast["colour"] == "red" and type(fast["colour"]) is str
    assert (fast["wide"], fast["wide_text"], fast["number_choice"]) == (2**40, str(2**40), 1)
    assert fast["big"] == 1 and type(fast["big"]) is int
    assert fast["ratio"] == 2.0 and type(fast["ratio"]) is float
    assert fast["greeting"] == "hello" and "missing" not in fast and fast["fallback"] == "dflt"
    assert fast["when"] == "2026-03-01T11:00:00.000005+01:00"
    assert fast["fixed"] == "2026-03-01T10:00:00.000005Z" and fast["dated"] == "2026/03/01"
    assert (fast["shout"], fast["related"], fast["unrelated"], fast["deep"]) == (
        "N",
        "7",
        gone and gone.value,
        8,
    )
