"""Punycode (IDNA A-label) names: a `xn--` label must decode to a valid international name,
wherever a hostname, subdomain label or domain is accepted (and again in the renderer)."""

from __future__ import annotations

import pytest
from django.core.exceptions import ValidationError
from django.test import Client

from containers import services as containers
from containers.models import Container
from networking import publishing
from networking.validators import (
    is_dns_label,
    validate_dns_label,
    validate_domain,
    validate_hostname,
)
from portal.errors import ValidationFailed
from tests.factories import UserFactory, make_site
from tests.fixtures.networking import create
from tests.unit.networking.test_render import options, route, state

# Labels that are not valid punycode: broken encodings, code points IDNA
# refuses (U+0080, an emoji).
BAD = ["xn--zzzzzz-9", "xn--a", "xn--ls8h", "xn--zzzzzz-9-web"]
# Valid international names: bücher, münchen, пример, あ.
GOOD = ["xn--bcher-kva", "xn--mnchen-3ya", "xn--e1afmkfd", "xn--l8j"]


@pytest.mark.parametrize("label", BAD)
def test_invalid_punycode_is_refused_by_every_name_validator(label: str) -> None:
    for check in (validate_dns_label, validate_hostname):
        with pytest.raises(ValidationError, match="punycode"):
            check(label)
    with pytest.raises(ValidationError, match="punycode"):
        validate_domain(f"{label}.example.org")
    with pytest.raises(ValidationError, match="punycode"):
        validate_domain(f"apps.{label}.org")
    assert not is_dns_label(label)


@pytest.mark.parametrize("label", GOOD)
def test_valid_punycode_and_plain_labels_still_pass(label: str) -> None:
    validate_hostname(label)
    validate_domain(f"{label}.example.org")
    assert is_dns_label(label)
    for plain in ("web", "a--b", "x-n--y", "xn-a"):
        validate_hostname(plain)


def test_the_renderer_leaves_a_bad_punycode_route_out(tmp_path) -> None:
    from networking.render import render

    r = render(state(routes=(route(1, "web"), route(2, "xn--zzzzzz-9"))), options(tmp_path))
    left = {(e["kind"], e["id"]): e["reason"] for e in r.excluded}
    assert set(left) == {("route", 2)} and "not a DNS label" in left[("route", 2)]
    assert "xn--zzzzzz-9" not in "".join(r.files.values())


@pytest.mark.django_db(transaction=True)
def test_containers_and_services_with_bad_punycode_are_refused(
    no_jobs: None, no_gateway_tasks: None
) -> None:
    site = make_site(None)
    with pytest.raises(ValidationFailed, match="punycode") as info:
        containers.container_create(
            owner=UserFactory(), hostname="xn--zzzzzz-9", template=site.templates.get()
        )
    assert info.value.code == "invalid_hostname" and info.value.extra["field"] == "hostname"
    web = create(site, "web")
    with pytest.raises(ValidationFailed, match="punycode") as info:
        publishing.route_add(container=web, name="xn--zzzzzz-9", backend_port=80)
    assert info.value.extra["field"] == "name"
    assert publishing.route_add(container=web, name="shop", backend_port=80).subdomain == "shop-web"
    assert not Container.objects.filter(hostname="xn--zzzzzz-9").exists()


@pytest.mark.django_db
def test_the_api_and_the_live_check_refuse_bad_punycode() -> None:
    make_site(None)
    client = Client()
    client.force_login(UserFactory())
    api = client.post(
        "/api/v1/containers/",
        {"hostname": "xn--zzzzzz-9", "template": "debian-12"},
        content_type="application/json",
    )
    assert api.status_code == 400 and api.json()["code"] == "invalid_hostname"
    assert "hostname" in api.json()["detail"]
    live = client.get("/containers/check-hostname", {"hostname": "xn--zzzzzz-9"}).json()
    assert live["ok"] is False and "punycode" in live["message"]
