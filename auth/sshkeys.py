"""SSH public keys: parsed and checked before they reach a container or the directory.

The key material is loaded with `cryptography` (a blob that merely starts with its type
string, or a type followed by junk, is refused), RSA is measured by its modulus, and what
is kept is normalised to `type canonical-base64 [comment]`.
"""

from __future__ import annotations

import base64
import binascii

from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.serialization import load_ssh_public_key

from portal.errors import ValidationFailed

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
