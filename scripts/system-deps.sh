#!/usr/bin/env bash
# Install the system packages the portal, its demo and its tests use, if any is missing.
# Non-interactive; never lets a package start a service (nginx on :80, dnsmasq on :53...).
set -euo pipefail

PACKAGES=(python3-venv python3-dev gcc libldap2-dev libsasl2-dev nginx libnginx-mod-stream dnsmasq-base
          slapd ldap-utils redis-server chromium chromium-driver dnsutils wrk apache2-utils
          openssh-server openssh-client)

missing=()
have_pkg() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q "install ok installed"; }
for p in "${PACKAGES[@]}"; do
  have_pkg "$p" || missing+=("$p")
done
# npm installs the browser's libraries (package-lock.json); a Node.js from elsewhere
# (NodeSource, nvm) will do, so Debian's is only asked for when there is no npm at all.
command -v npm >/dev/null || missing+=(nodejs npm)
# python3-venv/python3-dev are only needed when the Python in use is Debian's own.
if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi
if ! command -v apt-get >/dev/null; then
  echo "system-deps: missing ${missing[*]}, and no apt-get here; install them by hand" >&2
  exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
  SUDO=sudo
else
  SUDO=
fi
echo "system-deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
[ -x /usr/sbin/policy-rc.d ] || { printf '#!/bin/sh\nexit 101\n' | $SUDO tee /usr/sbin/policy-rc.d >/dev/null; $SUDO chmod +x /usr/sbin/policy-rc.d; }
echo "slapd slapd/no_configuration boolean true" | $SUDO debconf-set-selections
timeout 300 $SUDO apt-get update -q >/dev/null
timeout 900 $SUDO apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null
echo "system-deps: done"
