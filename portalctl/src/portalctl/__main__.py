"""`python -m portalctl`, the same as the `portalctl` command."""

from portalctl.app import main

main()
