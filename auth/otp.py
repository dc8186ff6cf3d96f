"""Small pieces of the two-factor flow: recovery-code hashing and the enrolment QR code."""

from __future__ import annotations

import hashlib
import secrets

import qrcode
import qrcode.image.svg

# Codes look like "k7qm-2xd9-p4tw": 12 characters of an alphabet without look-alikes.
_ALPHABET = "23456789abcdefghjkmnpqrstuvwxyz"


def new_recovery_code() -> str:
    raw = "".join(secrets.choice(_ALPHABET) for _ in range(12))
    return f"{raw[:4]}-{raw[4:8]}-{raw[8:]}"


def normalise_recovery_code(code: str) -> str:
    return "".join(ch for ch in (code or "").lower() if ch.isalnum())


def hash_recovery_code(code: str) -> str:
    return hashlib.sha256(normalise_recovery_code(code).encode()).hexdigest()


def qr_svg(data: str) -> str:
    """An inline SVG of a QR code (no image library needed)."""
    image = qrcode.make(data, image_factory=qrcode.image.svg.SvgPathImage, box_size=8, border=2)
    svg: str = image.to_string(encoding="unicode")
    return svg
