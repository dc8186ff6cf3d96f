"""`python -m bench [name ...]`: run every bench module (or the named ones), each in a
process of its own.

A bench configures Django, environment variables and child processes for itself; a
process per bench means none inherits another's (the database URL one bench rewrote
broke the next when they shared a process), and one that crashes cannot take the
others down.
"""

from __future__ import annotations

import pkgutil
import subprocess
import sys
import time

import bench


def main(argv: list[str]) -> int:
    names = argv or sorted(
        m.name for m in pkgutil.iter_modules(bench.__path__) if not m.name.startswith("_")
    )
    failed = []
    for name in names:
        print(f"\n=== bench.{name} ===", flush=True)
        started = time.monotonic()
        code = subprocess.run([sys.executable, "-m", f"bench.{name}"], check=False).returncode
        if code:
            failed.append(name)
            print(f"bench.{name} failed (exit status {code})", flush=True)
        print(f"(bench.{name}: {time.monotonic() - started:.1f} s)", flush=True)
    if failed:
        print(f"\nfailed: {', '.join(failed)}", flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
