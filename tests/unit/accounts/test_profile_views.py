"""The profile pages (SSH keys, API tokens, resource requests) through Django's test client."""

from __future__ import annotations

import pytest
from django.test import Client

from auth.models import ApiToken, ResourceRequest, SshKey
from auth.tokens import token_authenticate
from tests.factories import UserFactory
from tests.unit.accounts.test_sshkeys import ED25519

pytestmark = pytest.mark.django_db


@pytest.fixture
def bob():
    return UserFactory(username="bob")


@pytest.fixture
def client(bob) -> Client:
    c = Client()
    c.force_login(bob)
    return c


def test_account_page_links_every_profile_page(client) -> None:
    page = client.get("/accounts/").content.decode()
    for href in (
        "/accounts/ssh-keys/",
        "/accounts/tokens/",
        "/accounts/requests/",
        "/accounts/2fa/",
    ):
        assert f'href="{href}"' in page


def test_ssh_key_errors_are_shown_at_the_field(client, bob) -> None:
    response = client.post("/accounts/ssh-keys/", {"key": "ssh-dss AAAA x"})
    assert response.status_code == 400
    html = response.content.decode()
    assert 'id="key-error"' in html and "unsupported SSH key type &#x27;ssh-dss&#x27;" in html
    response = client.post("/accounts/ssh-keys/", {"key": f"{ED25519}\n{ED25519}"})
    assert "add one key at a time" in response.content.decode()
    assert not SshKey.objects.exists()


def test_ssh_key_add_duplicate_and_remove(client, bob) -> None:
    response = client.post("/accounts/ssh-keys/", {"key": ED25519, "name": ""})
    assert response.status_code == 302
    key = SshKey.objects.get(user=bob)
    assert key.name == "bob@laptop"
    page = client.get("/accounts/ssh-keys/").content.decode()
    assert f"SHA256:{key.fingerprint}" in page
    again = client.post("/accounts/ssh-keys/", {"key": ED25519})
    assert again.status_code == 400 and "is already in the profile" in again.content.decode()
    # Another user's key cannot be removed by pk.
    other = Client()
    other.force_login(UserFactory(username="eve"))
    assert other.post(f"/accounts/ssh-keys/{key.pk}/remove/").status_code == 404
    assert client.post(f"/accounts/ssh-keys/{key.pk}/remove/").status_code == 302
    assert not SshKey.objects.exists()


def test_the_create_form_is_prefilled_with_the_profile_keys(client, bob) -> None:
    from tests.factories import make_site

    make_site(None)
    client.post("/accounts/ssh-keys/", {"key": ED25519})
    page = client.get("/containers/new/").content.decode()
    assert ED25519 in page
    assert 'id="quota"' in page and "Containers" in page


def test_token_is_shown_once_then_only_its_prefix(client, bob) -> None:
    response = client.post(
        "/accounts/tokens/", {"name": "CI deploy", "scope": "write", "expires_in_days": "30"}
    )
    # Shown in the answer to the POST itself: never parked in the session for a redirect.
    assert response.status_code == 200
    assert "no-store" in response["Cache-Control"]
    token = ApiToken.objects.get(user=bob)
    first = response.content.decode()
    assert 'id="new-token"' in first
    plain = first.split('id="new-token">', 1)[1].split("<", 1)[0]
    assert plain.startswith(f"cpt_{token.prefix}_")
    assert token_authenticate(plain, address="127.0.0.1").pk == token.pk
    assert first.count(plain) == 2  # the code and the copy button's data
    second = client.get("/accounts/tokens/").content.decode()
    assert plain not in second and f"cpt_{token.prefix}_…" in second
    assert "Read and write" in second and "never" in second  # not used yet


def test_a_new_token_never_reaches_the_session_table(client, bob) -> None:
    from django.contrib.sessions.models import Session

    response = client.post(
        "/accounts/tokens/", {"name": "laptop", "scope": "read", "expires_in_days": "7"}
    )
    token = ApiToken.objects.get(user=bob)
    rows = list(Session.objects.all())
    assert rows  # the signed-in session is there, and holds nothing of the token
    for row in rows:
        assert f"cpt_{token.prefix}_" not in repr(row.get_decoded())
    html = response.content.decode()
    plain = html.split('id="new-token">', 1)[1].split("<", 1)[0]
    secret = plain.split("_", 2)[2]  # cpt_<prefix>_<secret>; the secret may hold "_" too
    assert plain.startswith(f"cpt_{token.prefix}_")
    for row in Session.objects.all():
        assert secret not in row.session_data and secret not in repr(row.get_decoded())
    # Not on the next page either, nor in a flash message.
    assert secret not in client.get("/accounts/tokens/").content.decode()


def test_token_errors_at_the_field_and_revoke(client, bob) -> None:
    response = client.post(
        "/accounts/tokens/", {"name": "  ", "scope": "read", "expires_in_days": "7"}
    )
    assert response.status_code == 400 and 'id="name-error"' in response.content.decode()
    response = client.post(
        "/accounts/tokens/", {"name": "x", "scope": "admin", "expires_in_days": "7"}
    )
    assert 'id="scope-error"' in response.content.decode()
    client.post(
        "/accounts/tokens/", {"name": "laptop", "scope": "read", "expires_in_days": "never"}
    )
    token = ApiToken.objects.get(user=bob)
    assert token.expires_at is None
    other = Client()
    other.force_login(UserFactory(username="eve"))
    assert other.post(f"/accounts/tokens/{token.pk}/revoke/").status_code == 404
    assert client.post(f"/accounts/tokens/{token.pk}/revoke/").status_code == 302
    token.refresh_from_db()
    assert token.revoked_at is not None
    assert "revoked" in client.get("/accounts/tokens/").content.decode()


def test_resource_request_filed_listed_and_cancelled(client, bob) -> None:
    response = client.post("/accounts/requests/", {"max_cores": "8", "reason": "short"})
    assert response.status_code == 400
    assert 'id="reason-error"' in response.content.decode()
    assert "say in a sentence why you need it" in response.content.decode()
    response = client.post("/accounts/requests/", {"reason": "A course project needs it."})
    assert "ask for at least one limit" in response.content.decode()
    response = client.post(
        "/accounts/requests/", {"max_cores": "8", "reason": "A course project needs more cores."}
    )
    assert response.status_code == 302
    row = ResourceRequest.objects.get(user=bob)
    assert row.limits == {"max_cores": 8} and row.status == "pending"
    page = client.get("/accounts/requests/").content.decode()
    assert "A course project needs more cores." in page and "Pending" in page
    assert client.post(f"/accounts/requests/{row.pk}/cancel/").status_code == 302
    row.refresh_from_db()
    assert row.status == "cancelled"
    assert "cancelled by its author" in client.get("/accounts/requests/").content.decode()


@pytest.mark.parametrize("value", [str(2**63), str(2**31)])
def test_a_quota_request_beyond_the_column_is_refused_at_the_field(client, bob, value) -> None:
    response = client.post(
        "/accounts/requests/", {"max_cores": value, "reason": "A course project needs more cores."}
    )
    assert response.status_code == 400
    html = response.content.decode()
    assert 'id="max_cores-error"' in html and "2147483647" in html
    assert not ResourceRequest.objects.exists()
