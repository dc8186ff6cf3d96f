"""Parameter declarations for the endpoints pvesim serves.

Written for pvesim from the names, types and ranges Proxmox VE 9 documents;
indexed options use pve-container's ranges (net 0-31, mp/dev/unused 0-255).
"""

from __future__ import annotations

from pvesim import formats
from pvesim.schema import Prop, Schema, indexed

NODE = Prop(format="pve-node")
VMID = Prop("integer", format="pve-vmid", minimum=100, maximum=999_999_999)
VMID_OPT = VMID.opt()
STORAGE_ID = Prop(format="pve-storage-id")
SNAPNAME = Prop(format="pve-configid", max_length=40)
BOOL = Prop("boolean", optional=True)
DIGEST = Prop(optional=True, max_length=40)
STR_OPT = Prop(optional=True)

OSTYPES = (
    "debian",
    "devuan",
    "ubuntu",
    "centos",
    "fedora",
    "opensuse",
    "archlinux",
    "alpine",
    "gentoo",
    "nixos",
    "unmanaged",
)
LOCKS = (
    "backup",
    "create",
    "destroyed",
    "disk",
    "fstrim",
    "migrate",
    "mounted",
    "rollback",
    "snapshot",
    "snapshot-delete",
)
ARCHES = ("amd64", "i386", "arm64", "armhf", "riscv32", "riscv64")

NET_COUNT = 32
MP_COUNT = 256

# The container options shared by create and PUT config (json_config_properties).
LXC_OPTIONS: dict[str, Prop] = {
    "arch": Prop(optional=True, enum=ARCHES, default="amd64"),
    "cmode": Prop(optional=True, enum=("shell", "console", "tty"), default="tty"),
    "console": Prop("boolean", optional=True, default=1),
    "cores": Prop("integer", optional=True, minimum=1, maximum=8192),
    "cpulimit": Prop("number", optional=True, minimum=0, maximum=8192, default=0),
    "cpuunits": Prop("integer", optional=True, minimum=0, maximum=500000),
    "debug": Prop("boolean", optional=True, default=0),
    "description": Prop(optional=True, max_length=8192),
    "entrypoint": Prop(optional=True, pattern=r"[^\x00-\x08\x10-\x1F\x7F]+"),
    "env": Prop(
        optional=True,
        pattern=r"(?:\w+=[^\x00-\x08\x10-\x1F\x7F]*)(?:\0\w+=[^\x00-\x08\x10-\x1F\x7F]*)*",
    ),
    "features": Prop(optional=True, format=formats.FEATURES_FORMAT),
    "hookscript": Prop(optional=True, format="pve-volume-id"),
    "hostname": Prop(optional=True, format="dns-name", max_length=255),
    "lock": Prop(optional=True, enum=LOCKS),
    "memory": Prop("integer", optional=True, minimum=16, default=512),
    "nameserver": Prop(optional=True, format="lxc-ip-with-ll-iface-list"),
    "onboot": Prop("boolean", optional=True, default=0),
    "ostype": Prop(optional=True, enum=OSTYPES),
    "protection": Prop("boolean", optional=True, default=0),
    "rootfs": Prop(optional=True, format=formats.ROOTFS_FORMAT),
    "searchdomain": Prop(optional=True, format="dns-name-list"),
    "startup": Prop(optional=True, format="pve-startup-order"),
    "swap": Prop("integer", optional=True, minimum=0, default=512),
    "tags": Prop(optional=True, format="pve-tag-list"),
    "template": Prop("boolean", optional=True, default=0),
    "timezone": Prop(optional=True, format="pve-ct-timezone"),
    "tty": Prop("integer", optional=True, minimum=0, maximum=6, default=2),
    "unprivileged": Prop("boolean", optional=True, default=0),
    **indexed("net", NET_COUNT, Prop(optional=True, format=formats.NET_FORMAT)),
    **indexed("mp", MP_COUNT, Prop(optional=True, format=formats.MP_FORMAT)),
    **indexed("dev", MP_COUNT, Prop(optional=True, format=formats.DEV_FORMAT)),
    **indexed("unused", MP_COUNT, Prop(optional=True, format=formats.UNUSED_FORMAT)),
}

LXC_CREATE: Schema = {
    "node": NODE,
    "vmid": VMID,
    "ostemplate": Prop(max_length=255),
    **LXC_OPTIONS,
    "password": Prop(optional=True, min_length=5),
    "storage": Prop(optional=True, format="pve-storage-id", default="local"),
    "force": BOOL,
    "restore": BOOL,
    "unique": Prop("boolean", optional=True, requires="restore"),
    "pool": Prop(optional=True, format="pve-poolid"),
    "ignore-unpack-errors": BOOL,
    "ssh-public-keys": STR_OPT,
    "bwlimit": Prop("number", optional=True, minimum=0),
    "start": Prop("boolean", optional=True, default=0),
    "ha-managed": Prop("boolean", optional=True, default=0),
}

LXC_UPDATE: Schema = {
    "node": NODE,
    "vmid": VMID,
    **LXC_OPTIONS,
    "delete": Prop(optional=True, format="pve-configid-list"),
    "revert": Prop(optional=True, format="pve-configid-list"),
    "digest": DIGEST,
}

NODE_ONLY: Schema = {"node": NODE}
NODE_VMID: Schema = {"node": NODE, "vmid": VMID}

LXC_CONFIG_GET: Schema = {
    **NODE_VMID,
    "current": Prop("boolean", optional=True, default=0),
    "snapshot": SNAPNAME.opt(),
}

LXC_DESTROY: Schema = {
    **NODE_VMID,
    "force": Prop("boolean", optional=True, default=0),
    "purge": Prop("boolean", optional=True, default=0),
    "destroy-unreferenced-disks": BOOL,
}

LXC_START: Schema = {**NODE_VMID, "skiplock": BOOL, "debug": Prop("boolean", optional=True)}
LXC_STOP: Schema = {
    **NODE_VMID,
    "skiplock": BOOL,
    "overrule-shutdown": Prop("boolean", optional=True, default=0),
}
LXC_SHUTDOWN: Schema = {
    **NODE_VMID,
    "timeout": Prop("integer", optional=True, minimum=0, default=60),
    "forceStop": Prop("boolean", optional=True, default=0),
}
LXC_REBOOT: Schema = {**NODE_VMID, "timeout": Prop("integer", optional=True, minimum=0)}

LXC_RRDDATA: Schema = {
    **NODE_VMID,
    "timeframe": Prop(enum=("hour", "day", "week", "month", "year")),
    "cf": Prop(optional=True, enum=("AVERAGE", "MAX")),
}

LXC_CLONE: Schema = {
    **NODE_VMID,
    "newid": VMID,
    "hostname": Prop(optional=True, format="dns-name"),
    "description": STR_OPT,
    "pool": Prop(optional=True, format="pve-poolid"),
    "snapname": SNAPNAME.opt(),
    "storage": STORAGE_ID.opt(),
    "full": BOOL,
    "target": NODE.opt(),
    "bwlimit": Prop("number", optional=True, minimum=0),
}

LXC_RESIZE: Schema = {
    **NODE_VMID,
    "disk": Prop(enum=("rootfs", *(f"mp{i}" for i in range(MP_COUNT)))),
    "size": Prop(pattern=r"\+?\d+(\.\d+)?[KMGT]?"),
    "digest": DIGEST,
}

SNAPSHOT_CREATE: Schema = {**NODE_VMID, "snapname": SNAPNAME, "description": STR_OPT}
SNAPSHOT_ITEM: Schema = {**NODE_VMID, "snapname": SNAPNAME}
SNAPSHOT_DELETE: Schema = {**SNAPSHOT_ITEM, "force": BOOL}
SNAPSHOT_ROLLBACK: Schema = {**SNAPSHOT_ITEM, "start": Prop("boolean", optional=True, default=0)}

UPID = Prop()
TASK_ITEM: Schema = {"node": NODE, "upid": UPID}
TASK_LOG: Schema = {
    **TASK_ITEM,
    "start": Prop("integer", optional=True, minimum=0, default=0),
    "limit": Prop("integer", optional=True, minimum=0, default=50),
    "download": BOOL,
}
TASK_LIST: Schema = {
    "node": NODE,
    "errors": Prop("boolean", optional=True, default=0),
    "limit": Prop("integer", optional=True, minimum=0, default=50),
    "since": Prop("integer", optional=True),
    "source": Prop(optional=True, enum=("archive", "active", "all"), default="archive"),
    "start": Prop("integer", optional=True, minimum=0, default=0),
    "statusfilter": Prop(optional=True, format="pve-task-status-type-list"),
    "typefilter": STR_OPT,
    "until": Prop("integer", optional=True),
    "userfilter": STR_OPT,
    "vmid": VMID_OPT,
}

NEXTID: Schema = {"vmid": VMID_OPT}
RESOURCES: Schema = {"type": Prop(optional=True, enum=("vm", "storage", "node", "sdn"))}
NO_PARAMS: Schema = {}

STORAGE_LIST: Schema = {
    "node": NODE,
    "content": Prop(optional=True, format="pve-storage-content-list"),
    "enabled": Prop("boolean", optional=True, default=0),
    "format": Prop("boolean", optional=True, default=0),
    "storage": STORAGE_ID.opt(),
    "target": NODE.opt(),
}
STORAGE_CONTENT: Schema = {
    "node": NODE,
    "storage": STORAGE_ID,
    "content": Prop(optional=True, format="pve-storage-content"),
    "vmid": VMID_OPT,
}
APLINFO_DOWNLOAD: Schema = {"node": NODE, "storage": STORAGE_ID, "template": Prop(max_length=255)}

TICKET: Schema = {
    "username": Prop(max_length=64),
    "password": Prop(),
    "realm": Prop(optional=True, format="pve-realm", max_length=32),
    "otp": STR_OPT,
    "path": Prop(optional=True, max_length=64, requires="privs"),
    "privs": Prop(optional=True, format="pve-priv-list", max_length=64, requires="path"),
    "tfa-challenge": STR_OPT,
    "new-format": Prop("boolean", optional=True, default=1),
}

ACL_UPDATE: Schema = {
    "path": Prop(),
    "roles": Prop(format="pve-roleid-list"),
    "users": Prop(optional=True, format="pve-userid-list"),
    "groups": Prop(optional=True, format="pve-groupid-list"),
    "tokens": Prop(optional=True, format="pve-tokenid-list"),
    "propagate": Prop("boolean", optional=True, default=1),
    "delete": BOOL,
}

REALM_SYNC: Schema = {
    "realm": Prop(format="pve-realm", max_length=32),
    "dry-run": Prop("boolean", optional=True, default=0),
    "enable-new": Prop("boolean", optional=True, default=1),
    "full": BOOL,
    "purge": BOOL,
    "remove-vanished": Prop(
        optional=True,
        pattern=r"(?:(?:(?:acl|properties|entry);)*(?:acl|properties|entry))|none",
        default="none",
    ),
    "scope": Prop(optional=True, enum=("users", "groups", "both")),
}

USERS_LIST: Schema = {"enabled": BOOL, "full": Prop("boolean", optional=True, default=0)}
