"""The CT's tools as one zip application: pvesim/guestos zipped as ``guestos/``."""

from __future__ import annotations

import functools
import io
import zipfile
from pathlib import Path

GUESTOS = Path(__file__).resolve().parent.parent / "guestos"
MAIN = "import sys\nfrom guestos.cli import main\nsys.exit(main())\n"


@functools.cache
def guestos_pyz() -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("__main__.py", MAIN)
        for path in sorted(GUESTOS.glob("*.py")):
            zf.writestr(f"guestos/{path.name}", path.read_text())
    return buf.getvalue()
