"""TOTP keys at rest: encrypted in the database (like a node's token secret), still
verifying codes, and never rendered, logged or returned once the device is enrolled."""

from __future__ import annotations

import base64
import importlib
import logging
import re
from types import SimpleNamespace

import pytest
from django.contrib.sessions.models import Session
from django.db import connection
from django.test import Client

from auth.models import AuthenticatorDevice
from tests.functional.accounts.test_two_factor import enrol, password_login, totp

pytestmark = [pytest.mark.ldap, pytest.mark.django_db]


@pytest.fixture
def no_throttle(settings):
    settings.OTP_TOTP_THROTTLE_FACTOR = 0
    return settings


def secrets_of(device: AuthenticatorDevice) -> list[str]:
    """Every spelling of the key a leak could use: hex (as stored by django-otp), base32
    (as in the QR code and the enrolment page) and base64."""
    raw = device.bin_key
    b32 = base64.b32encode(raw).decode()
    return [raw.hex(), raw.hex().upper(), b32, b32.rstrip("="), base64.b64encode(raw).decode()]


def database_text() -> str:
    """Every row of every table, as the database holds it (sessions decoded)."""
    out = []
    with connection.cursor() as cursor:
        for table in connection.introspection.table_names(cursor):
            cursor.execute(f"SELECT * FROM {connection.ops.quote_name(table)}")
            out.extend(repr(row) for row in cursor.fetchall())
    out.extend(repr(s.get_decoded()) for s in Session.objects.all())
    return "\n".join(out)


def test_the_raw_database_never_holds_the_key(ldap_settings, no_throttle) -> None:
    client = Client()
    password_login(client, "bob", "bob-pw")
    device, _ = enrol(client)
    text = database_text()
    for spelling in secrets_of(device):
        assert spelling not in text
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT {connection.ops.quote_name('key')} FROM accounts_authenticatordevice"
        )
        (stored,) = cursor.fetchone()
    assert stored.startswith("gAAAAA")  # a Fernet token, as node secrets are stored
    # Verification still works: a fresh login with the app's code.
    fresh = Client()
    password_login(fresh, "bob", "bob-pw")
    ok = fresh.post("/accounts/login/verify/", {"code": totp(device, ahead=1)})
    assert ok.status_code == 302 and ok["Location"] == "/"


def test_the_key_is_never_shown_logged_or_returned_after_enrolment(
    ldap_settings, no_throttle, caplog
) -> None:
    caplog.set_level(logging.DEBUG)
    client = Client()
    password_login(client, "carol", "carol-pw")
    device, _ = enrol(client)
    seen = []
    for path in ("/accounts/", "/accounts/2fa/", "/api/v1/me/"):
        response = client.get(path)
        assert response.status_code == 200, path
        seen.append(response.content.decode())
    fresh = Client()
    password_login(fresh, "carol", "carol-pw")
    seen.append(fresh.get("/accounts/login/verify/").content.decode())
    fresh.post("/accounts/login/verify/", {"code": totp(device, ahead=1)})
    seen.append(repr(device))
    seen.append(str(device))
    logs = "\n".join(r.getMessage() for r in caplog.records)
    for spelling in secrets_of(device):
        assert spelling not in "\n".join(seen)
        assert spelling not in logs


def test_the_data_migration_encrypts_plain_keys_and_reverses(db) -> None:
    from django.apps import apps

    from tests.factories import UserFactory

    migration = importlib.import_module("auth.migrations.0002_totp_key_encrypted")
    user = UserFactory(username="olduser")
    key = "3132333435363738393031323334353637383930"
    qn = connection.ops.quote_name
    # What RunPython is given; only its connection and quoting are used.
    editor = SimpleNamespace(connection=connection, quote_name=qn)
    auto_id = "serial" if connection.vendor == "postgresql" else "integer"  # as an AutoField
    with connection.cursor() as cursor:
        cursor.execute(
            f"CREATE TABLE {qn('otp_totp_totpdevice')} ("
            f"id {auto_id} PRIMARY KEY, user_id integer, name varchar(64), confirmed boolean, "
            f"{qn('key')} varchar(80), step smallint, t0 bigint, digits smallint, "
            "tolerance smallint, drift smallint, last_t bigint, "
            "throttling_failure_timestamp timestamp with time zone NULL, "
            "throttling_failure_count integer, created_at timestamp with time zone NULL, "
            "last_used_at timestamp with time zone NULL)"
        )
    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {qn('otp_totp_totpdevice')} VALUES "
            "(7, %s, 'phone', %s, %s, 30, 0, 6, 1, 0, -1, NULL, 0, %s, NULL)",
            [user.pk, True, key, "2025-01-02 03:04:05"],
        )
    migration.encrypt_existing(apps, editor)
    device = AuthenticatorDevice.objects.get(user=user)
    assert device.key == key and device.confirmed and device.name == "phone"
    assert device.created_at is not None and device.created_at.year == 2025  # kept
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT {qn('key')} FROM {qn('otp_totp_totpdevice')}")
        assert cursor.fetchall() == []  # no plain key left behind
        cursor.execute(f"SELECT {qn('key')} FROM accounts_authenticatordevice")
        (stored,) = cursor.fetchone()
    assert key not in stored and re.fullmatch(r"gAAAAA[\w=-]+", stored)
    # The RFC 6238 test key verifies the code an app would show now.
    from django_otp.oath import TOTP

    assert device.verify_token(f"{TOTP(device.bin_key).token():06d}")
    # And back: the plain key returns to the old table, the encrypted row goes.
    migration.decrypt_back(apps, editor)
    assert not AuthenticatorDevice.objects.exists()
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT {qn('key')}, name FROM {qn('otp_totp_totpdevice')}")
        assert cursor.fetchall() == [(key, "phone")]


def test_the_admin_lists_devices_without_the_key_and_resets_with_an_audit(
    ldap_settings, no_throttle
) -> None:
    from django.contrib.auth.models import User

    from auth.models import AuditEntry, RecoveryCode

    client = Client()
    password_login(client, "bob", "bob-pw")
    device, _ = enrol(client)
    ops = Client()
    ops.force_login(User.objects.create_user("ops", password="x", is_staff=True, is_superuser=True))
    pages = [
        ops.get("/admin/accounts/authenticatordevice/"),
        ops.get(f"/admin/accounts/authenticatordevice/{device.pk}/change/"),
    ]
    for page in pages:
        assert page.status_code == 200 and "bob" in page.content.decode()
        for spelling in secrets_of(device):
            assert spelling not in page.content.decode()
    gone = ops.post(f"/admin/accounts/authenticatordevice/{device.pk}/delete/", {"post": "yes"})
    assert gone.status_code == 302
    assert not AuthenticatorDevice.objects.exists() and not RecoveryCode.objects.exists()
    assert AuditEntry.objects.get(action="2fa.reset").actor_name == "ops"
