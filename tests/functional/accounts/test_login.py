"""Portal login through the real directory: django-auth-ldap, group mirroring, staff flags,
break-glass local accounts, and django-axes lockouts."""

from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model
from django.test import Client

from auth import logins
from auth.models import AuditEntry
from portal.procs import free_port

pytestmark = [pytest.mark.ldap, pytest.mark.django_db]

User = get_user_model()


def login(client: Client, username: str, password: str, **extra):
    return client.post("/accounts/login/", {"username": username, "password": password}, **extra)


def test_right_password_logs_in_and_creates_the_user_from_the_directory(ldap_settings) -> None:
    client = Client(REMOTE_ADDR="192.0.2.10")
    response = login(client, "bob", "bob-pw")
    assert response.status_code == 302 and response["Location"] == "/"  # the container list
    bob = User.objects.get(username="bob")
    assert (bob.first_name, bob.last_name, bob.email) == ("Bob", "Builder", "bob@example.test")
    assert not bob.has_usable_password()  # the directory holds the password, not the portal
    assert client.get("/accounts/").status_code == 200
    entry = AuditEntry.objects.get(action="login.success")
    assert entry.actor == bob and entry.address == "192.0.2.10"


def test_wrong_password_and_unknown_user_are_refused_the_same_way(ldap_settings) -> None:
    client = Client(REMOTE_ADDR="192.0.2.11")
    wrong = login(client, "bob", "not-bobs")
    unknown = login(client, "nobody", "whatever")
    for response in (wrong, unknown):
        assert response.status_code == 401
        assert b"Wrong username or password." in response.content
    assert client.get("/accounts/").status_code == 302  # still anonymous
    assert not User.objects.filter(username="nobody").exists()
    failures = AuditEntry.objects.filter(action="login.failure").order_by("id")
    assert [f.actor_name for f in failures] == ["bob", "nobody"]
    assert all(f.address == "192.0.2.11" and f.actor is None for f in failures)


def test_the_staff_group_makes_staff_and_groups_are_mirrored(ldap_settings) -> None:
    assert login(Client(), "alice", "alice-pw").status_code == 302
    assert login(Client(), "dave", "dave-pw").status_code == 302
    alice, dave = User.objects.get(username="alice"), User.objects.get(username="dave")
    assert alice.is_staff and not alice.is_superuser
    assert not dave.is_staff
    assert set(alice.groups.values_list("name", flat=True)) == {"portal-admins", "portal-users"}
    assert set(dave.groups.values_list("name", flat=True)) == {"students", "researchers"}


def test_group_changes_in_the_directory_follow_at_the_next_login(ldap_settings, slapd) -> None:
    import ldap3

    assert login(Client(), "erin", "erin-pw").status_code == 302
    assert not User.objects.get(username="erin").is_staff
    conn = slapd.admin()
    staff = "cn=portal-admins,ou=groups,dc=example,dc=test"
    erin_dn = "uid=erin,ou=people,dc=example,dc=test"
    conn.modify(staff, {"member": [(ldap3.MODIFY_ADD, [erin_dn])]})
    try:
        assert login(Client(), "erin", "erin-pw").status_code == 302
        erin = User.objects.get(username="erin")
        assert erin.is_staff and "portal-admins" in erin.groups.values_list("name", flat=True)
    finally:
        conn.modify(staff, {"member": [(ldap3.MODIFY_DELETE, [erin_dn])]})


def test_lockout_after_repeated_failures_per_user_and_address(ldap_settings) -> None:
    ldap_settings.AXES_FAILURE_LIMIT = 3
    attacker = Client(REMOTE_ADDR="198.51.100.7")
    for _ in range(2):
        assert login(attacker, "carol", "guess").status_code == 401
    locked = login(attacker, "carol", "guess")
    assert locked.status_code == 429
    assert b"Too many failed logins" in locked.content and b"carol" in locked.content
    # Even the right password is refused from there now.
    assert login(attacker, "carol", "carol-pw").status_code == 429
    # Per user and address: carol herself, elsewhere, is not locked out.
    assert login(Client(REMOTE_ADDR="203.0.113.5"), "carol", "carol-pw").status_code == 302
    assert AuditEntry.objects.filter(
        action="login.failure", summary__contains="locked out"
    ).exists()

    # An operator unlocks; it is audited.
    operator = User.objects.create_user("ops", password="x", is_staff=True)
    assert logins.lockout_reset(actor=operator, username="carol") >= 1
    assert login(attacker, "carol", "carol-pw").status_code == 302
    assert AuditEntry.objects.get(action="login.unlock").actor == operator


def test_local_accounts_are_for_break_glass_operators_only(ldap_settings) -> None:
    User.objects.create_user("root-ops", password="local-secret", is_staff=True)
    User.objects.create_user("plain", password="local-secret")
    assert login(Client(), "root-ops", "local-secret").status_code == 302
    assert login(Client(), "plain", "local-secret").status_code == 401
    ldap_settings.LOCAL_LOGIN_FOR_USERS = True
    assert login(Client(), "plain", "local-secret").status_code == 302


def test_a_directory_that_is_down_says_so_and_break_glass_still_works(ldap_settings) -> None:
    ldap_settings.AUTH_LDAP_SERVER_URI = f"ldap://127.0.0.1:{free_port()}"
    User.objects.create_user("root-ops", password="local-secret", is_superuser=True)
    response = login(Client(), "bob", "bob-pw")
    assert response.status_code == 401 and b"The directory is not answering" in response.content
    assert login(Client(), "root-ops", "local-secret").status_code == 302


def test_next_is_followed_only_within_the_portal(ldap_settings) -> None:
    ok = Client().post(
        "/accounts/login/", {"username": "bob", "password": "bob-pw", "next": "/accounts/2fa/"}
    )
    assert ok["Location"] == "/accounts/2fa/"
    evil = Client().post(
        "/accounts/login/", {"username": "bob", "password": "bob-pw", "next": "https://evil.test/"}
    )
    assert evil["Location"] == "/"


def test_the_admin_login_goes_through_the_portal_login(ldap_settings) -> None:
    response = Client().get("/admin/")
    assert response.status_code == 302
    follow = Client().get(response["Location"])
    assert follow.status_code == 302 and follow["Location"].startswith("/accounts/login/?next=")
    assert login(Client(), "alice", "alice-pw").status_code == 302
    client = Client()
    login(client, "alice", "alice-pw")
    assert client.get("/admin/").status_code == 200  # alice is staff through her group


def test_logout(ldap_settings) -> None:
    client = Client()
    login(client, "bob", "bob-pw")
    assert client.post("/accounts/logout/").status_code == 302
    assert client.get("/accounts/").status_code == 302
    assert AuditEntry.objects.filter(action="logout").count() == 1


def test_a_user_without_admin_rights_is_offered_another_login_not_a_loop(ldap_settings) -> None:
    client = Client()
    login(client, "bob", "bob-pw")
    response = client.get("/accounts/login/?next=/admin/")
    assert response.status_code == 200 and b"You are logged in as bob" in response.content
    assert client.get("/accounts/login/").status_code == 302
    assert b"not a staff account" in response.content


def test_a_logged_in_user_sent_to_the_login_page_goes_on_to_where_they_were_going(
    ldap_settings,
) -> None:
    """Only the admin wants more than a login; anywhere else the user is sent straight on
    (the gateway's bounce among them), never told they may not open it."""
    client = Client()
    login(client, "bob", "bob-pw")
    deep = "/gateway/login?next=https://app.apps.example.test/p?x=1%26y=2"
    for target in ("/containers/", deep):
        response = client.get("/accounts/login/", {"next": target})
        assert (response.status_code, response["Location"]) == (302, target)
    response = client.get("/accounts/login/", {"next": "https://elsewhere.example/"})
    assert response.status_code == 302 and "elsewhere" not in response["Location"]


def test_a_disabled_account_cannot_log_in_even_with_the_right_password(ldap_users) -> None:
    bob = ldap_users["bob"]
    bob.is_active = False
    bob.save()
    response = login(Client(), "bob", "bob-pw")
    assert response.status_code == 403 and b"This account is disabled." in response.content
