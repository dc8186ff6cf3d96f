"""SSH public keys: parsed and checked before they reach a container or the directory."""

from __future__ import annotations

import base64
import binascii
import struct

from portal.errors import ValidationFailed

KEY_TYPES = frozenset(
    {
        "ssh-ed25519",
        "ssh-rsa",
        "ecdsa-sha2-nistp256",
        "ecdsa-sha2-nistp384",
        "ecdsa-sha2-nistp521",
        "sk-ssh-ed25519@openssh.com",
        "sk-ecdsa-sha2-nistp256@openssh.com",
    }
)
MAX_KEYS = 20


def parse_key(line: str) -> str:
    """Return the key normalised to `type base64 [comment]`, or raise ValidationFailed."""
    parts = line.strip().split(None, 2)
    if len(parts) < 2:
        raise ValidationFailed(
            "an SSH public key looks like 'ssh-ed25519 AAAA... comment'", field="ssh_public_keys"
        )
    key_type, blob, comment = parts[0], parts[1], (parts[2] if len(parts) == 3 else "")
    if key_type not in KEY_TYPES:
        raise ValidationFailed(
            f"unsupported SSH key type '{key_type[:40]}'", field="ssh_public_keys"
        )
    try:
        raw = base64.b64decode(blob, validate=True)
        (length,) = struct.unpack(">I", raw[:4])
        embedded = raw[4 : 4 + length].decode("ascii")
    except (binascii.Error, struct.error, UnicodeDecodeError) as exc:
        raise ValidationFailed(
            "the SSH key's data is not valid base64 key material", field="ssh_public_keys"
        ) from exc
    if embedded != key_type:
        raise ValidationFailed(
            f"the SSH key says '{key_type}' but its data is a '{embedded[:40]}' key",
            field="ssh_public_keys",
        )
    if key_type == "ssh-rsa" and len(raw) < 200:
        raise ValidationFailed("RSA keys must be at least 2048 bits", field="ssh_public_keys")
    # Comments are free text for people; keep them printable and on one line.
    comment = "".join(ch for ch in comment if ch.isprintable())[:100]
    return f"{key_type} {blob}" + (f" {comment}" if comment else "")


def parse_keys(text: str) -> list[str]:
    keys = [
        parse_key(line)
        for line in (text or "").splitlines()
        if line.strip() and not line.startswith("#")
    ]
    if len(keys) > MAX_KEYS:
        raise ValidationFailed(f"at most {MAX_KEYS} SSH keys", field="ssh_public_keys")
    return keys
