#!/bin/sh
# First boot of a container made from the template: point SSSD and sudo at this
# container's access group, ct-<hostname>. Proxmox sets the hostname the portal chose,
# and the portal names the group after it (LDAP_CONTAINER_GROUP_PREFIX, default "ct-"),
# so the container needs nothing else to know its group.
#
# Packages in the template: sssd-ldap libpam-sss libnss-sss libsss-sudo openssh-server sudo
# (pam-auth-update --enable sss mkhomedir), and these files:
#   /etc/sssd/sssd.conf.in, /etc/sudoers.d/portal-access.in (from sudoers.in),
#   /etc/ssh/sshd_config.d/portal.conf, this script, portal-access.service.
set -eu

prefix="${PORTAL_GROUP_PREFIX:-ct-}"
host="${PORTAL_HOSTNAME:-$(hostname -s)}"
group="${prefix}${host}"
root="${PORTAL_ACCESS_ROOT:-}"   # for testing the script outside a container

case "$group" in
    *[!a-z0-9-]*) echo "portal-access: unexpected group name '$group'" >&2; exit 1 ;;
esac

umask 077
sed "s/@GROUP@/${group}/g" "$root/etc/sssd/sssd.conf.in" > "$root/etc/sssd/sssd.conf"
chmod 0600 "$root/etc/sssd/sssd.conf"

# (sudo ignores files in sudoers.d whose names contain a dot, such as the .in and .new)
sed "s/@GROUP@/${group}/g" "$root/etc/sudoers.d/portal-access.in" > "$root/etc/sudoers.d/portal-access.new"
chmod 0440 "$root/etc/sudoers.d/portal-access.new"
if command -v visudo >/dev/null 2>&1; then
    visudo -cf "$root/etc/sudoers.d/portal-access.new" >/dev/null
fi
mv "$root/etc/sudoers.d/portal-access.new" "$root/etc/sudoers.d/portal-access"

if [ -z "$root" ]; then
    systemctl restart sssd
    systemctl reload ssh 2>/dev/null || systemctl reload sshd 2>/dev/null || true
fi
echo "portal-access: logins and sudo limited to members of ${group}"
