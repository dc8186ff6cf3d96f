"""``python -m pvesim``: run the simulator (see :mod:`pvesim.cli`)."""

from pvesim.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
