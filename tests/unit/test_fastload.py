"""portal/fastload.py: a row read whole skips Model.__init__ and gives the same object;
anything it cannot vouch for takes Django's own path."""

from __future__ import annotations

from typing import Any

import pytest
from django.db import connection
from django.db.models import signals
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from containers.metrics.models import ContainerSample
from containers.models import Container
from portal.fastload import _attnames
from tests.factories import UserFactory, make_containers, make_site

pytestmark = pytest.mark.django_db


def fields_of(c: Container) -> dict[str, Any]:
    return {f.attname: getattr(c, f.attname) for f in Container._meta.concrete_fields}


def through_init(pk: int) -> Container:
    """The container as Django's own from_db builds it."""
    values = Container.objects.filter(pk=pk).values_list(
        *(f.attname for f in Container._meta.concrete_fields)
    )[0]
    return Container(*values)


def test_a_row_read_whole_is_the_object_init_would_give() -> None:
    made = make_containers(make_site(None), 1, first_vmid=100, owner=UserFactory())[0]
    loaded = Container.objects.get(pk=made.pk)
    assert Container.__dict__["_fastload_attnames"] is not None  # the fast path was taken
    assert fields_of(loaded) == fields_of(through_init(made.pk))
    assert (loaded._state.adding, loaded._state.db) == (False, "default")
    assert loaded.get_deferred_fields() == set()
    # Relations load through their descriptors and are cached as with __init__.
    with CaptureQueriesContext(connection) as queries:
        assert loaded.site.pk == made.site_id and loaded.site is loaded.site
    assert len(queries) == 1
    # A save updates the row (not an insert: `_state.adding` is False).
    loaded.status_message = "edited"
    loaded.save(update_fields=["status_message"])
    assert Container.objects.get(pk=made.pk).status_message == "edited"
    assert Container.objects.count() == 1


def test_a_row_with_deferred_fields_loads_them_when_read() -> None:
    made = make_containers(make_site(None), 1, first_vmid=100, owner=UserFactory())[0]
    Container.objects.filter(pk=made.pk).update(description="a long text")
    loaded = Container.objects.defer("description", "ssh_public_keys").get(pk=made.pk)
    assert loaded.get_deferred_fields() == {"description", "ssh_public_keys"}
    assert "description" not in loaded.__dict__
    with CaptureQueriesContext(connection) as queries:
        assert loaded.description == "a long text"
    assert len(queries) == 1
    assert loaded.hostname == made.hostname


def test_a_listened_model_takes_djangos_path() -> None:
    made = make_containers(make_site(None), 1, first_vmid=100, owner=UserFactory())[0]
    ContainerSample.objects.create(container=made, sampled_at=timezone.now(), pve_status="running")
    heard: list[Any] = []

    def listener(sender: Any, instance: Any, **kwargs: Any) -> None:
        heard.append(instance)

    signals.post_init.connect(listener, sender=Container)
    try:
        loaded = Container.objects.select_related("sample").get(pk=made.pk)
    finally:
        signals.post_init.disconnect(listener, sender=Container)
    assert heard == [loaded]  # Container's post_init was sent; the sample has no listener
    assert loaded.sample.pve_status == "running"


def test_a_field_whose_descriptor_does_more_takes_djangos_path(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert _attnames(Container) is not None
    monkeypatch.setattr(Container, "description", property(lambda self: "computed"))
    assert _attnames(Container) is None
