"""Guest emulation (``--guest-emulation``): a running CT whose address is on loopback gets
a real OpenSSH server, and sessions run as an unprivileged user in the CT's directory.

:mod:`pvesim.guests.manager` runs in the simulator, :mod:`pvesim.guests.init` is each
running CT's init process, :mod:`pvesim.guests.session` the sshd ForceCommand, and
:mod:`pvesim.guestos` what runs inside the CT (the stand-ins). docs/pvesim.md describes it.
"""
