"""A token for a password (the CLI's `login`), through the real directory: the web login's
checks in the API's shape, 2FA, django-axes lockouts, the throttle and the audit."""

from __future__ import annotations

from typing import Any

import pytest
from django.core.cache import cache
from django.test import Client

from auth.models import AuditEntry, TokenScope

from .test_two_factor import enrol, password_login, totp

pytestmark = [pytest.mark.ldap, pytest.mark.django_db]

URL = "/api/v1/auth/token/"


def token_login(client: Client, **body: Any):
    return client.post(URL, body, content_type="application/json")


@pytest.fixture(autouse=True)
def fresh_throttle() -> None:
    cache.clear()


def test_a_password_gets_a_scoped_expiring_token_that_works(ldap_settings) -> None:
    response = token_login(Client(), username="alice", password="alice-pw", name="laptop")
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["token"].startswith("cpt_") and body["name"] == "laptop"
    assert body["scope"] == TokenScope.WRITE and body["expires_at"]
    me = Client().get("/api/v1/me/", HTTP_AUTHORIZATION=f"Bearer {body['token']}")
    assert me.status_code == 200 and me.json()["username"] == "alice"
    actions = set(AuditEntry.objects.values_list("action", flat=True))
    assert {"login.success", "token.create"} <= actions
    # Read-only on request; never a token that does not expire.
    read = token_login(Client(), username="alice", password="alice-pw", scope="read")
    assert read.json()["scope"] == TokenScope.READ
    forever = token_login(Client(), username="alice", password="alice-pw", expires_in_days=None)
    assert forever.status_code == 400 and "expires_in_days" in forever.json()["detail"]


def test_wrong_password_and_unknown_user_get_the_same_answer(ldap_settings) -> None:
    wrong = token_login(Client(), username="alice", password="guess")
    unknown = token_login(Client(), username="nobody", password="guess")
    assert wrong.status_code == unknown.status_code == 401
    assert wrong.json() == unknown.json()
    assert wrong.json()["code"] == "authentication_failed"
    assert AuditEntry.objects.filter(action="login.failure").count() == 2


def test_an_account_with_2fa_needs_its_code(ldap_settings, settings) -> None:
    settings.OTP_TOTP_THROTTLE_FACTOR = 0
    browser = Client()
    assert password_login(browser, "bob", "bob-pw").status_code == 302
    device, codes = enrol(browser)

    missing = token_login(Client(), username="bob", password="bob-pw")
    assert missing.status_code == 401 and missing.json()["code"] == "otp_required"
    wrong_code = "000000" if totp(device, ahead=1) != "000000" else "111111"
    wrong = token_login(Client(), username="bob", password="bob-pw", otp=wrong_code)
    assert wrong.status_code == 401 and wrong.json()["code"] == "otp_invalid"
    right = token_login(Client(), username="bob", password="bob-pw", otp=totp(device, ahead=1))
    assert right.status_code == 201, right.content
    recovery = token_login(Client(), username="bob", password="bob-pw", otp=codes[0])
    assert recovery.status_code == 201
    # The right code with the wrong password is still a wrong password.
    bad = token_login(Client(), username="bob", password="nope", otp=totp(device, ahead=2))
    assert bad.status_code == 401 and bad.json()["code"] == "authentication_failed"


def test_staff_who_must_use_2fa_and_have_none_are_sent_to_set_it_up(ldap_settings) -> None:
    ldap_settings.OTP_REQUIRED_FOR_STAFF = True
    refused = token_login(Client(), username="alice", password="alice-pw")  # alice is staff
    assert refused.status_code == 403 and refused.json()["code"] == "otp_setup_required"
    assert "/accounts/2fa/" in refused.json()["message"]


def test_axes_locks_the_api_out_as_it_does_the_web_login(ldap_settings) -> None:
    ldap_settings.AXES_FAILURE_LIMIT = 3
    attacker = Client(REMOTE_ADDR="198.51.100.9")
    for _ in range(2):
        assert token_login(attacker, username="carol", password="guess").status_code == 401
    locked = token_login(attacker, username="carol", password="guess")
    assert locked.status_code == 403 and locked.json()["code"] == "locked_out"
    right = token_login(attacker, username="carol", password="carol-pw")
    assert right.status_code == 403 and right.json()["code"] == "locked_out"
    # The web login from there is refused too; carol elsewhere is not.
    assert password_login(attacker, "carol", "carol-pw").status_code == 429
    elsewhere = Client(REMOTE_ADDR="203.0.113.9")
    assert token_login(elsewhere, username="carol", password="carol-pw").status_code == 201


def test_password_logins_are_throttled_per_address(ldap_settings) -> None:
    ldap_settings.API_LOGIN_THROTTLE_RATE = "3/minute"
    client = Client(REMOTE_ADDR="198.51.100.10")
    answers = [token_login(client, username="dave", password="dave-pw") for _ in range(4)]
    assert [a.status_code for a in answers] == [201, 201, 201, 429]
    assert answers[-1].json()["code"] == "throttled" and answers[-1]["Retry-After"]
