"""`manage.py gateway render|apply|status`, and the auth_request endpoint.

The auth_request endpoint, in process; the commands against the real nginx and
dnsmasq are in tests/functional/networking/test_command.py.
"""

from __future__ import annotations

from typing import Any

import pytest
from django.conf import settings

from networking import publishing
from tests.factories import UserFactory, make_site
from tests.fixtures.networking import create

pytestmark = pytest.mark.django_db(transaction=True)


def test_the_auth_endpoint_answers_for_the_route_of_the_host(
    no_jobs: None, no_gateway_tasks: None, client: Any
) -> None:
    from auth.gateway_access import credential_exchange, credential_mint

    site = make_site(None)
    owner, other = UserFactory(username="own"), UserFactory(username="oth")
    web = create(site, "web", owner=owner)
    publishing.route_update(route=web.routes.get(), access="owner")
    url = "/gateway/auth"
    fqdn = "web.apps.example.test"
    host = {"HTTP_X_ORIGINAL_HOST": fqdn}

    def credential(user: Any, for_host: str = fqdn) -> dict[str, str]:
        code = credential_mint(user=user, host=for_host, session_key=f"s-{user.pk}")
        secret = credential_exchange(code=code, host=for_host)
        assert secret is not None
        return {"HTTP_COOKIE": f"a=1; {settings.GATEWAY_CREDENTIAL_COOKIE}={secret}; b=2"}

    assert client.get(url, **host).status_code == 401
    # The portal's own session is never a gateway credential.
    client.force_login(owner)
    assert client.get(url, **host).status_code == 401
    client.logout()
    r = client.get(url, **host, **credential(other))
    assert r.status_code == 403 and r["X-Gateway-Cookie"] == "a=1; b=2"
    assert client.get(url, **host, **credential(owner)).status_code == 204
    minted_elsewhere = credential(owner, "other.apps.example.test")
    assert client.get(url, **host, **minted_elsewhere).status_code == 401
    assert client.get(url, HTTP_X_ORIGINAL_HOST="nope.apps.example.test").status_code == 403
    publishing.route_update(route=web.routes.get(), access="users")
    assert client.get(url, **host, **credential(other)).status_code == 204
    publishing.route_update(route=web.routes.get(), access="public")
    r = client.get(url, **host, HTTP_COOKIE="x=1; portal_session=abc")
    assert r.status_code == 204 and r["X-Gateway-Cookie"] == "x=1"
