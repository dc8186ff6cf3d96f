"""LXC containers: create, list, config, power, destroy, clone, resize, ...

Synchronous checks and their texts follow pve-container's API2/LXC*.pm:
what Proxmox checks before forking answers at once (500/400/403); what it
checks inside the worker gives a UPID and then a failed task.

One module per area (``lifecycle``, ``power``, ``disks``, ``status``);
importing one registers its routes (``pvesim.api.load_all`` imports them
all). Helpers more than one area uses live in ``shared``.
"""
