"""pvesim: a Proxmox VE 9 API simulator for an LXC hosting portal.

Run it with ``python -m pvesim`` or drive it from tests through
:mod:`pvesim.testing`.
"""

__version__ = "0.1.0"

# What /version reports; the error texts follow this release (see README).
PVE_VERSION = "9.2.0"
PVE_RELEASE = "9.2"
PVE_REPOID = "5fa1c3d2e7b04a19"
