"""SSH keys kept in the portal: checked, passed to new containers, written to the directory."""

from __future__ import annotations

import base64
import hashlib
import re

import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from auth import sshkeys
from auth.models import AuditEntry, SshKey
from containers import services
from portal.errors import Conflict, ValidationFailed
from tests.factories import UserFactory, make_site

pytestmark = pytest.mark.django_db

ED25519 = (
    "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl bob@laptop"
)
ED25519_2 = (
    "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHrY8kzJkVQ0c1p7r9rKk4zQb8m5Y0sJdV0kzvXo7h3W bob@desk"
)


def fingerprint(key: str) -> str:
    raw = base64.b64decode(key.split()[1])
    return base64.b64encode(hashlib.sha256(raw).digest()).decode().rstrip("=")


def test_a_key_is_checked_and_kept(db) -> None:
    bob = UserFactory(username="bob")
    key = sshkeys.ssh_key_add(user=bob, key=f"  {ED25519}  ")
    assert key.key == ED25519 and key.name == "bob@laptop"
    assert key.fingerprint == fingerprint(ED25519)  # as `ssh-keygen -l` prints it (SHA256:...)
    assert AuditEntry.objects.get(action="sshkey.add").actor == bob


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("not a key", "unsupported SSH key type"),
        ("ssh-ed25519", "looks like 'ssh-ed25519 AAAA... comment'"),
        ("ssh-ed25519 !!!notbase64 x", "not valid base64"),
        (
            "ssh-rsa AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl",
            "is a 'ssh-ed25519' key",
        ),
        ("ssh-dss AAAAB3NzaC1kc3M= old", "unsupported SSH key type 'ssh-dss'"),
        (f"{ED25519}\n{ED25519_2}", "one key at a time"),
    ],
)
def test_wrong_keys_are_rejected_with_a_clear_message(db, text, message) -> None:
    with pytest.raises(ValidationFailed, match=message.replace("(", r"\(").replace(".", r"\.")):
        sshkeys.ssh_key_add(user=UserFactory(), key=text)
    assert not SshKey.objects.exists()


def test_the_same_key_twice_is_a_conflict(db) -> None:
    bob = UserFactory()
    sshkeys.ssh_key_add(user=bob, key=ED25519)
    with pytest.raises(Conflict, match="already in the profile"):
        sshkeys.ssh_key_add(user=bob, key=ED25519.replace("bob@laptop", "other comment"))


def test_profile_keys_go_to_new_containers(db) -> None:
    site = make_site()
    bob = UserFactory(username="bob")
    sshkeys.ssh_key_add(user=bob, key=ED25519)
    sshkeys.ssh_key_add(user=bob, key=ED25519_2)
    c = services.container_create(
        owner=bob, hostname="web", template=site.templates.get()
    ).container
    assert c.ssh_public_keys.splitlines() == [ED25519, ED25519_2]
    # Keys given with the request win over the profile's.
    c2 = services.container_create(
        owner=bob, hostname="web2", template=site.templates.get(), ssh_public_keys=ED25519_2
    ).container
    assert c2.ssh_public_keys == ED25519_2


# -- keys are parsed for real (cryptography's loader), not just by their first string ----------
def _string(data: bytes) -> bytes:
    return len(data).to_bytes(4, "big") + data


def _blob_line(key_type: str, body: bytes, comment: str = "") -> str:
    blob = base64.b64encode(_string(key_type.encode()) + body).decode()
    return f"{key_type} {blob}" + (f" {comment}" if comment else "")


def _openssh(public_key, comment: str = "x@y") -> str:
    from cryptography.hazmat.primitives import serialization

    line = public_key.public_bytes(
        serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH
    ).decode()
    return f"{line} {comment}"


def _rsa(bits: int) -> str:
    from cryptography.hazmat.primitives.asymmetric import rsa

    return _openssh(rsa.generate_private_key(public_exponent=65537, key_size=bits).public_key())


def _ecdsa(curve) -> str:
    from cryptography.hazmat.primitives.asymmetric import ec

    return _openssh(ec.generate_private_key(curve).public_key())


def _sk_ed25519() -> str:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ed25519

    raw = (
        ed25519.Ed25519PrivateKey.generate()
        .public_key()
        .public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    )
    return _blob_line("sk-ssh-ed25519@openssh.com", _string(raw) + _string(b"ssh:"), "yubikey")


def _sk_ecdsa() -> str:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    point = (
        ec.generate_private_key(ec.SECP256R1())
        .public_key()
        .public_bytes(serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint)
    )
    body = _string(b"nistp256") + _string(point) + _string(b"ssh:")
    return _blob_line("sk-ecdsa-sha2-nistp256@openssh.com", body, "yubikey")


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda: _blob_line("ssh-ed25519", b""), "not a valid ssh-ed25519 key"),
        (lambda: _blob_line("ssh-rsa", bytes(range(200))), "not a valid ssh-rsa key"),
        (lambda: _blob_line("ssh-rsa", b"\xff" * 300), "not a valid ssh-rsa key"),
        (lambda: _rsa(1024), "at least 2048 bits (this one has 1024)"),
        (lambda: _rsa(1536), "at least 2048 bits (this one has 1536)"),
        (lambda: _rsa(2040), "at least 2048 bits (this one has 2040)"),
        (
            lambda: _blob_line(
                "ecdsa-sha2-nistp384",
                _string(b"nistp256") + _string(bytes.fromhex(_ecdsa_point_hex())),
            ),
            "not a valid ecdsa-sha2-nistp384 key",
        ),
    ],
)
def test_key_material_is_loaded_and_checked(db, make, message) -> None:
    with pytest.raises(ValidationFailed, match=re.escape(message)) as caught:
        sshkeys.ssh_key_add(user=UserFactory(), key=make())
    assert caught.value.extra["field"] == "ssh_public_keys"
    assert not SshKey.objects.exists()


def _ecdsa_point_hex() -> str:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    return (
        ec.generate_private_key(ec.SECP256R1())
        .public_key()
        .public_bytes(serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint)
        .hex()
    )


@pytest.mark.parametrize(
    "make",
    [
        lambda: _rsa(2048),
        lambda: _rsa(3072),
        lambda: _ecdsa(ec.SECP256R1()),
        lambda: ED25519,
        _sk_ed25519,
        _sk_ecdsa,
    ],
)
def test_sensible_keys_are_accepted_and_stored_normalised(db, make) -> None:
    line = make()
    key_type, blob, comment = line.split(None, 2)
    row = sshkeys.ssh_key_add(user=UserFactory(), key=f"\t{key_type}   {blob}  {comment} ")
    assert row.key == f"{key_type} {blob} {comment}"


def test_all_ecdsa_curves_are_accepted(db) -> None:
    user = UserFactory()
    for curve in (ec.SECP256R1(), ec.SECP384R1(), ec.SECP521R1()):
        sshkeys.ssh_key_add(user=user, key=_ecdsa(curve))
    assert SshKey.objects.filter(user=user).count() == 3


def test_base64_is_stored_canonical_and_comments_lose_control_characters(db) -> None:
    key_type, blob, _ = _ecdsa(ec.SECP256R1()).split(None, 2)
    assert blob.endswith("=")
    unpadded = blob.rstrip("=")
    row = sshkeys.ssh_key_add(
        user=UserFactory(), key=f"{key_type} {unpadded} bob\x1b[31m@laptop\u202e \x07evil\u2028x"
    )
    assert row.key == f"{key_type} {blob} bob[31m@laptop evil x"
    assert row.name == "bob[31m@laptop evil x"
    assert row.fingerprint == fingerprint(row.key)


def test_the_api_gives_the_key_error_at_its_field(db) -> None:
    from django.test import Client

    from tests.api_contract import check

    make_site(None)
    client = Client()
    client.force_login(UserFactory(username="alice"))
    response = check(
        client.post(
            "/api/v1/containers/",
            {
                "hostname": "web",
                "template": "debian-12",
                "ssh_public_keys": _blob_line("ssh-ed25519", b""),
            },
            content_type="application/json",
        )
    )
    assert response.status_code == 400
    body = response.json()
    assert body["code"] == "invalid" and "ssh_public_keys" in body["detail"]
    assert "not a valid ssh-ed25519 key" in str(body["detail"]["ssh_public_keys"])
