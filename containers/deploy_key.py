"""The portal's deploy key (LaunchPad, issue #15): an ed25519 key pair. Its public half
goes into each deployment's container when it is created, so the worker can log in to
bring the commit and start the app; no key of the portal's is ever put anywhere else.

Made on first use in DEPLOY_KEY_DIR (default `<PORTAL_VAR_DIR>/deploy-key`), the private
half mode 0600 in a directory of mode 0700. Workers on several hosts share it by having
the same files (deploy/README: copy it, or point DEPLOY_KEY_DIR at a shared path).
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from django.conf import settings

PRIVATE = "id_ed25519"
PUBLIC = "id_ed25519.pub"
COMMENT = "cluster-portal-deploy"


def deploy_key_path() -> Path:
    """The private key's file, made (once, whatever the races) if there is none."""
    directory = Path(settings.DEPLOY_KEY_DIR)
    private = directory / PRIVATE
    if private.exists():
        return private
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    key = Ed25519PrivateKey.generate()
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.OpenSSH,
        serialization.NoEncryption(),
    )
    public = key.public_key().public_bytes(
        serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH
    )
    # Written beside, then linked into place: the first of two racing processes wins and
    # the other reads its key; nobody ever reads a half-written file.
    suffix = secrets.token_hex(8)  # unique per caller, threads of one process included
    staged, staged_public = directory / f".{PRIVATE}.{suffix}", directory / f".{PUBLIC}.{suffix}"
    fd = os.open(staged, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as out:
        out.write(pem)
    staged_public.write_bytes(public + f" {COMMENT}\n".encode())
    try:
        os.link(staged, private)
        os.replace(staged_public, directory / PUBLIC)
    except FileExistsError:
        staged_public.unlink()
    finally:
        staged.unlink()
    return private


def deploy_public_key() -> str:
    """The public half, one OpenSSH line, for a container's authorized keys (derived from
    the private key, which is always whole; the .pub file is there for operators)."""
    key = serialization.load_ssh_private_key(deploy_key_path().read_bytes(), password=None)
    public = key.public_key().public_bytes(
        serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH
    )
    return f"{public.decode()} {COMMENT}"
