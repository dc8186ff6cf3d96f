"""SSH public keys: parsed and checked before they reach a container or the directory.

The key material is loaded with `cryptography` (a blob that merely starts with its type
string, or a type followed by junk, is refused), RSA is measured by its modulus, and what
is kept is normalised to `type canonical-base64 [comment]`.

The writes to a user's profile keys are here too: each records its audit entry and, with
a directory that takes SSH keys, queues the copy to it (`sync_ssh_keys`).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from typing import TYPE_CHECKING

from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.serialization import load_ssh_public_key
from django.conf import settings
from django.db import IntegrityError, transaction

from portal.errors import Conflict, ErrorCode, NotFound, ValidationFailed

from .audit import audit_record
from .models import SshKey

if TYPE_CHECKING:
    from django.contrib.auth.models import User

KEY_TYPES = frozenset(
    {
        "ssh-ed25519",
        "ssh-rsa",
        "ecdsa-sha2-nistp256",
        "ecdsa-sha2-nistp384",
        "ecdsa-sha2-nistp521",
        # Security-key (FIDO) variants: cryptography loads them (and checks their curve point).
        "sk-ssh-ed25519@openssh.com",
        "sk-ecdsa-sha2-nistp256@openssh.com",
    }
)
MIN_RSA_BITS = 2048
MAX_COMMENT = 100
MAX_KEYS = 20
FIELD = "ssh_public_keys"


def _embedded_type(raw: bytes) -> str:
    """The type string a key blob starts with ('' if it has none)."""
    length = int.from_bytes(raw[:4], "big")
    try:
        return raw[4 : 4 + length].decode("ascii") if len(raw) >= 4 + length else ""
    except UnicodeDecodeError:
        return ""


def _clean_comment(comment: str) -> str:
    """Comments are free text for people: printable only, one line, spaces collapsed."""
    printable = "".join(ch if ch.isprintable() else (" " if ch.isspace() else "") for ch in comment)
    return " ".join(printable.split())[:MAX_COMMENT]


def parse_key(line: str) -> str:
    """Return the key normalised to `type base64 [comment]`, or raise ValidationFailed."""
    parts = (line or "").strip().split(None, 2)
    if len(parts) < 2:
        raise ValidationFailed(
            "an SSH public key looks like 'ssh-ed25519 AAAA... comment'", field=FIELD
        )
    key_type, blob, comment = parts[0], parts[1], (parts[2] if len(parts) == 3 else "")
    if key_type not in KEY_TYPES:
        raise ValidationFailed(f"unsupported SSH key type '{key_type[:40]}'", field=FIELD)
    try:
        # Padding is optional in what people paste; it is restored in what is kept.
        raw = base64.b64decode(blob + "=" * (-len(blob) % 4), validate=True)
    except (binascii.Error, ValueError) as exc:
        raise ValidationFailed(
            "the SSH key's data is not valid base64 key material", field=FIELD
        ) from exc
    embedded = _embedded_type(raw)
    if embedded and embedded != key_type and embedded in KEY_TYPES:
        raise ValidationFailed(
            f"the SSH key says '{key_type}' but its data is a '{embedded}' key", field=FIELD
        )
    canonical = base64.b64encode(raw).decode()
    try:
        public_key = load_ssh_public_key(f"{key_type} {canonical}".encode())
    except (ValueError, TypeError) as exc:  # wrong structure, bad point, trailing bytes
        raise ValidationFailed(
            f"the SSH key's data is not a valid {key_type} key", field=FIELD
        ) from exc
    if isinstance(public_key, rsa.RSAPublicKey):
        bits = public_key.key_size  # the modulus, not the blob
        if bits < MIN_RSA_BITS or public_key.public_numbers().n % 2 == 0:
            raise ValidationFailed(
                f"RSA keys must be at least {MIN_RSA_BITS} bits (this one has {bits})",
                field=FIELD,
            )
    comment = _clean_comment(comment)
    return f"{key_type} {canonical}" + (f" {comment}" if comment else "")


def parse_keys(text: str) -> list[str]:
    keys = [
        parse_key(line)
        for line in (text or "").splitlines()
        if line.strip() and not line.startswith("#")
    ]
    if len(keys) > MAX_KEYS:
        raise ValidationFailed(f"at most {MAX_KEYS} SSH keys", field=FIELD)
    return keys


# -- the profile's keys ------------------------------------------------------------------
def ssh_fingerprint(key: str) -> str:
    """OpenSSH's SHA256 fingerprint (base64, no padding) of a normalised key."""
    blob = key.split()[1]
    try:
        raw = base64.b64decode(blob, validate=True)
    except binascii.Error as exc:  # parse_key has already checked; belt and braces
        raise ValidationFailed("the SSH key's data is not valid base64", field="key") from exc
    return base64.b64encode(hashlib.sha256(raw).digest()).decode().rstrip("=")


def ssh_key_add(*, user: User, key: str, name: str = "", actor: User | None = None) -> SshKey:
    """Keep a public key in the user's profile (checked; wrong keys get a clear message)."""
    if "\n" in (key or "").strip():
        raise ValidationFailed("add one key at a time", field="key")
    normalised = parse_key(key)
    fingerprint = ssh_fingerprint(normalised)
    name = " ".join((name or "").split())[:100] or (normalised.split(None, 2)[2:] or [""])[0][:100]
    with transaction.atomic():
        if SshKey.objects.filter(user=user).count() >= MAX_KEYS:
            raise ValidationFailed(f"at most {MAX_KEYS} SSH keys", field="key")
        try:
            with transaction.atomic():
                row = SshKey.objects.create(
                    user=user, name=name, key=normalised, fingerprint=fingerprint
                )
        except IntegrityError as exc:
            raise Conflict(
                f"this key (SHA256:{fingerprint}) is already in the profile",
                code=ErrorCode.DUPLICATE_KEY,
                field="key",
            ) from exc
        audit_record(
            actor=actor or user,
            action="sshkey.add",
            obj=row,
            summary=f"added SSH key SHA256:{fingerprint} for {user.get_username()}",
            changes={"user": user.get_username(), "fingerprint": fingerprint},
        )
        _enqueue_ssh_sync(user)
    return row


def ssh_key_remove(*, key: SshKey, actor: User) -> None:
    if key.user_id != actor.pk and not getattr(actor, "is_staff", False):
        raise NotFound("no such SSH key")
    with transaction.atomic():
        user = key.user
        audit_record(
            actor=actor,
            action="sshkey.remove",
            obj=key,
            summary=f"removed SSH key SHA256:{key.fingerprint} of {user.get_username()}",
            changes={"user": user.get_username(), "fingerprint": key.fingerprint},
        )
        key.delete()
        _enqueue_ssh_sync(user)


def _enqueue_ssh_sync(user: User) -> None:
    if not settings.AUTH_LDAP_SERVER_URI or not settings.LDAP_SSH_KEYS:
        return
    user_id = user.pk

    def send() -> None:
        from .tasks import sync_ssh_keys

        sync_ssh_keys.apply_async(args=(user_id,))

    transaction.on_commit(send)


def ssh_keys_to_directory(*, user: User) -> str:
    """Write the user's keys to the directory's sshPublicKey attribute, where the schema has
    it. Returns what happened, in words; raises DirectoryUnavailable to be retried."""
    from .directory import get_directory

    directory = get_directory()
    if directory is None:
        return "no directory is configured"
    if not directory.supports_ssh_keys():
        return "the directory's schema has no sshPublicKey (openssh-lpk); keys stay in the portal"
    keys = list(
        SshKey.objects.filter(user=user).order_by("created_at").values_list("key", flat=True)
    )
    done = directory.ssh_keys_set(user.get_username(), keys)
    if done is None:
        return f"{user.get_username()} has no directory entry"
    return f"wrote {len(keys)} SSH key(s) for {user.get_username()}"
