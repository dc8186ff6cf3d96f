"""TOTP two-factor authentication: enrolment with a QR code and a first code, the login
flow asking for the code after the LDAP password, recovery codes, staff enforcement."""

from __future__ import annotations

import re
import time

import pytest
from django.test import Client
from django_otp.oath import TOTP

from auth.models import AuditEntry, RecoveryCode
from auth.models import AuthenticatorDevice as TOTPDevice

pytestmark = [pytest.mark.ldap, pytest.mark.django_db]


def totp(device: TOTPDevice, *, ahead: int = 0) -> str:
    """The code an authenticator app shows, `ahead` 30-second steps from now."""
    device.refresh_from_db()
    t = TOTP(device.bin_key, device.step, device.t0, device.digits, device.drift)
    t.time = time.time() + ahead * device.step
    return f"{t.token():0{device.digits}d}"


def password_login(client: Client, username: str, password: str):
    return client.post("/accounts/login/", {"username": username, "password": password})


def enrol(client: Client) -> tuple[TOTPDevice, list[str]]:
    assert client.post("/accounts/2fa/", {"action": "start"})["Location"] == "/accounts/2fa/enrol/"
    page = client.get("/accounts/2fa/enrol/")
    assert page.status_code == 200 and b"<svg" in page.content
    device = TOTPDevice.objects.get(confirmed=False)
    secret = re.search(rb'<code class="secret">([A-Z2-7=]+)</code>', page.content).group(1)
    import base64

    assert base64.b32decode(secret) == device.bin_key  # what the QR code carries, typed by hand
    wrong = client.post(
        "/accounts/2fa/enrol/", {"code": "000000" if totp(device) != "000000" else "111111"}
    )
    assert wrong.status_code == 400 and b"not right" in wrong.content
    done = client.post("/accounts/2fa/enrol/", {"code": totp(device)})
    assert done.status_code == 200
    codes = re.findall(rb"<li><code>([a-z0-9-]+)</code></li>", done.content)
    device.refresh_from_db()
    assert device.confirmed
    return device, [c.decode() for c in codes]


@pytest.fixture
def no_throttle(settings):
    settings.OTP_TOTP_THROTTLE_FACTOR = 0
    return settings


def test_enrol_then_log_in_with_and_without_the_code(ldap_settings, no_throttle) -> None:
    client = Client()
    assert password_login(client, "bob", "bob-pw").status_code == 302
    device, codes = enrol(client)
    assert len(codes) == 10 and len(set(codes)) == 10
    assert RecoveryCode.objects.filter(device__user=device.user).count() == 10
    assert not any(
        c in str(list(RecoveryCode.objects.values_list("code_hash", flat=True))) for c in codes
    )
    assert AuditEntry.objects.filter(action="2fa.enable", actor=device.user).exists()

    fresh = Client()
    step1 = password_login(fresh, "bob", "bob-pw")
    assert step1["Location"] == "/accounts/login/verify/"
    assert fresh.get("/accounts/").status_code == 302  # not logged in on the password alone
    bad = fresh.post("/accounts/login/verify/", {"code": "12345"})
    assert bad.status_code == 401 and fresh.get("/accounts/").status_code == 302
    assert AuditEntry.objects.filter(action="login.failure", summary__contains="2FA").exists()
    ok = fresh.post("/accounts/login/verify/", {"code": totp(device, ahead=1)})
    assert ok.status_code == 302 and ok["Location"] == "/"
    assert fresh.get("/accounts/").status_code == 200
    assert fresh.session["otp_device_id"] == device.persistent_id
    assert AuditEntry.objects.filter(action="login.success", summary__contains="TOTP").exists()


def test_a_recovery_code_works_once(ldap_settings, no_throttle) -> None:
    client = Client()
    password_login(client, "erin", "erin-pw")
    _, codes = enrol(client)
    for expected in (302, 401):
        c = Client()
        password_login(c, "erin", "erin-pw")
        response = c.post("/accounts/login/verify/", {"code": codes[0].upper()})
        assert response.status_code == expected
    assert RecoveryCode.objects.filter(used_at__isnull=False).count() == 1
    # New codes replace the old ones.
    page = client.post("/accounts/2fa/", {"action": "codes", "proof": "erin-pw"})
    new = re.findall(rb"<li><code>([a-z0-9-]+)</code></li>", page.content)
    assert len(new) == 10 and codes[1].encode() not in new
    c = Client()
    password_login(c, "erin", "erin-pw")
    assert c.post("/accounts/login/verify/", {"code": codes[1]}).status_code == 401
    assert c.post("/accounts/login/verify/", {"code": new[1].decode()}).status_code == 302


def test_wrong_codes_slow_down_the_next_tries(ldap_settings, settings) -> None:
    client = Client()
    password_login(client, "dave", "dave-pw")
    settings.OTP_TOTP_THROTTLE_FACTOR = 0
    device, _ = enrol(client)
    settings.OTP_TOTP_THROTTLE_FACTOR = 5
    c = Client()
    password_login(c, "dave", "dave-pw")
    assert c.post("/accounts/login/verify/", {"code": "000001"}).status_code == 401
    # Right code, but too soon after a wrong one: still refused.
    assert c.post("/accounts/login/verify/", {"code": totp(device, ahead=1)}).status_code == 401


def test_staff_must_enrol_when_the_setting_says_so(ldap_settings, no_throttle) -> None:
    ldap_settings.OTP_REQUIRED_FOR_STAFF = True
    client = Client()
    response = password_login(client, "alice", "alice-pw")  # alice is staff (portal-admins)
    assert response["Location"] == "/accounts/2fa/?required=1"
    for path in ("/accounts/", "/admin/"):
        assert client.get(path)["Location"].startswith("/accounts/2fa/")
    page = client.get("/accounts/2fa/?required=1")
    assert b"Staff accounts must use two-factor authentication" in page.content
    device, _ = enrol(client)
    assert client.get("/accounts/").status_code == 200  # verified by the enrolment itself
    assert client.get("/admin/").status_code == 200
    # It cannot be turned off while required (not even with the password).
    client.post("/accounts/2fa/", {"action": "disable", "proof": "alice-pw"})
    assert TOTPDevice.objects.filter(pk=device.pk).exists()
    # Ordinary users are not concerned.
    bob = Client()
    password_login(bob, "bob", "bob-pw")
    assert bob.get("/accounts/").status_code == 200


def test_turning_2fa_off(ldap_settings, no_throttle) -> None:
    client = Client()
    password_login(client, "carol", "carol-pw")
    enrol(client)
    client.post("/accounts/2fa/", {"action": "disable", "proof": "carol-pw"})
    assert not TOTPDevice.objects.exists() and not RecoveryCode.objects.exists()
    assert AuditEntry.objects.filter(action="2fa.disable").exists()
    assert password_login(Client(), "carol", "carol-pw")["Location"] == "/"


def test_the_code_step_expires(ldap_settings, no_throttle) -> None:
    ldap_settings.OTP_LOGIN_TIMEOUT = 0
    client = Client()
    password_login(client, "bob", "bob-pw")
    device, _ = enrol(client)
    c = Client()
    password_login(c, "bob", "bob-pw")
    time.sleep(0.01)
    response = c.post("/accounts/login/verify/", {"code": totp(device, ahead=1)})
    assert response.status_code == 302 and response["Location"] == "/accounts/login/"
    assert c.get("/accounts/").status_code == 302


# -- changing 2FA needs proof: the current code, a recovery code or the password ----------------
def field_error(response) -> str:
    match = re.search(
        rb'<p class="error" role="alert" id="proof-error">([^<]*)</p>', response.content
    )
    return match.group(1).decode() if match else ""


def code_hashes(user) -> set[str]:
    return set(RecoveryCode.objects.filter(device__user=user).values_list("code_hash", flat=True))


def test_new_recovery_codes_need_proof(ldap_settings, no_throttle) -> None:
    client = Client()
    password_login(client, "bob", "bob-pw")
    device, codes = enrol(client)
    before = code_hashes(device.user)
    for proof in (None, "", "wrong-password", "123456" if totp(device) != "123456" else "654321"):
        data = {"action": "codes"} if proof is None else {"action": "codes", "proof": proof}
        response = client.post("/accounts/2fa/", data)
        assert response.status_code == 400, proof
        assert field_error(response), proof
        assert b"<li><code>" not in response.content
        assert code_hashes(device.user) == before
    assert "not right" in field_error(
        client.post("/accounts/2fa/", {"action": "codes", "proof": "x"})
    )
    assert AuditEntry.objects.filter(action="2fa.confirm_failed", actor=device.user).exists()
    # Each kind of proof works: the password, the current code, a recovery code (of the
    # newest set: each new set replaces the one before).
    latest = codes
    for kind in ("password", "totp", "recovery"):
        proof = {"password": "bob-pw", "totp": totp(device, ahead=1), "recovery": latest[0]}[kind]
        response = client.post("/accounts/2fa/", {"action": "codes", "proof": proof})
        assert response.status_code == 200 and b"<li><code>" in response.content, kind
        assert code_hashes(device.user) != before
        before = code_hashes(device.user)
        latest = [
            c.decode() for c in re.findall(rb"<li><code>([a-z0-9-]+)</code></li>", response.content)
        ]
    entry = AuditEntry.objects.filter(action="2fa.recovery_codes").first()
    assert entry.changes["confirmed_by"] == "recovery code"
    assert "bob-pw" not in str(list(AuditEntry.objects.values_list("summary", "changes")))


def test_turning_2fa_off_needs_proof(ldap_settings, no_throttle) -> None:
    client = Client()
    password_login(client, "carol", "carol-pw")
    device, _ = enrol(client)
    for data in ({"action": "disable"}, {"action": "disable", "proof": "carol-pw-wrong"}):
        response = client.post("/accounts/2fa/", data)
        assert response.status_code == 400 and field_error(response)
        assert TOTPDevice.objects.filter(pk=device.pk, confirmed=True).exists()
        assert RecoveryCode.objects.exists()
    response = client.post("/accounts/2fa/", {"action": "disable", "proof": totp(device, ahead=1)})
    assert response.status_code == 302
    assert not TOTPDevice.objects.exists() and not RecoveryCode.objects.exists()
    assert AuditEntry.objects.get(action="2fa.disable").changes["confirmed_by"] == "TOTP code"


def test_moving_to_a_new_device_needs_proof(ldap_settings, no_throttle) -> None:
    client = Client()
    password_login(client, "dave", "dave-pw")
    old, _ = enrol(client)
    assert client.post("/accounts/2fa/", {"action": "start"})["Location"] == "/accounts/2fa/enrol/"
    page = client.get("/accounts/2fa/enrol/")
    assert b'name="proof"' in page.content
    new = TOTPDevice.objects.get(confirmed=False)
    for proof in ("", "dave-pw-wrong"):
        response = client.post("/accounts/2fa/enrol/", {"code": totp(new), "proof": proof})
        assert response.status_code == 400 and field_error(response)
        assert TOTPDevice.objects.get(pk=old.pk).confirmed
        assert not TOTPDevice.objects.get(pk=new.pk).confirmed
    done = client.post("/accounts/2fa/enrol/", {"code": totp(new), "proof": "dave-pw"})
    assert done.status_code == 200 and b"<li><code>" in done.content
    assert list(TOTPDevice.objects.values_list("pk", "confirmed")) == [(new.pk, True)]
    assert AuditEntry.objects.filter(action="2fa.enable").first().changes["confirmed_by"] == (
        "password"
    )


def test_wrong_proofs_count_toward_the_lockout(ldap_settings, no_throttle) -> None:
    ldap_settings.AXES_FAILURE_LIMIT = 3
    client = Client(REMOTE_ADDR="198.51.100.9")
    password_login(client, "erin", "erin-pw")
    device, _ = enrol(client)
    for _ in range(2):
        assert (
            client.post("/accounts/2fa/", {"action": "disable", "proof": "guess"}).status_code
            == 400
        )
    locked = client.post("/accounts/2fa/", {"action": "disable", "proof": "000000"})
    assert locked.status_code == 429
    # Locked out: even the right password changes nothing now.
    assert (
        client.post("/accounts/2fa/", {"action": "disable", "proof": "erin-pw"}).status_code == 429
    )
    assert TOTPDevice.objects.filter(pk=device.pk).exists()
    assert AuditEntry.objects.filter(action="2fa.confirm_failed").count() >= 3


def test_a_directory_that_is_down_is_named_and_a_code_still_works(
    ldap_settings, no_throttle
) -> None:
    from portal.procs import free_port

    client = Client()
    password_login(client, "bob", "bob-pw")
    device, _ = enrol(client)
    ldap_settings.AUTH_LDAP_SERVER_URI = f"ldap://127.0.0.1:{free_port()}"
    response = client.post("/accounts/2fa/", {"action": "codes", "proof": "bob-pw"})
    assert response.status_code == 400 and "directory is not answering" in field_error(response)
    response = client.post("/accounts/2fa/", {"action": "codes", "proof": totp(device, ahead=1)})
    assert response.status_code == 200 and b"<li><code>" in response.content


def test_a_break_glass_account_proves_itself_with_its_local_password(
    ldap_settings, no_throttle
) -> None:
    from django.contrib.auth.models import User

    User.objects.create_user("root-ops", password="local-secret", is_staff=True)
    client = Client()
    password_login(client, "root-ops", "local-secret")
    enrol(client)
    wrong = client.post("/accounts/2fa/", {"action": "disable", "proof": "bob-pw"})
    assert wrong.status_code == 400 and TOTPDevice.objects.exists()
    done = client.post("/accounts/2fa/", {"action": "disable", "proof": "local-secret"})
    assert done.status_code == 302 and not TOTPDevice.objects.exists()
