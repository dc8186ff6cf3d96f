"""What runs inside an emulated CT: the ``apt-get``, ``dpkg``, ``systemctl`` and
``journalctl`` stand-ins, and the CT's boot step.

Standard library only, and relative imports only: the simulator zips this package into
each CT (``<ct>/usr/lib/pvesim/guestos.pyz``) and the CT's unprivileged user runs it with
the host's ``python3``, which may not be able to read the simulator's own checkout.
``tests/unit/pvesim/test_guestos_*.py`` import it in place.
"""
