#!/usr/bin/env bash
# Installs the Debian packages the tests and the demo need, only if they are missing.
# Safe to run again; needs root (or sudo) on Debian 12.
set -euo pipefail

packages=(nginx squid fuse3 attr)

missing=()
for p in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
    exit 0
fi

echo "install-deps: installing ${missing[*]}"
as_root=()
[ "$(id -u)" -eq 0 ] || as_root=(sudo)
export DEBIAN_FRONTEND=noninteractive
"${as_root[@]}" apt-get update -qq
# The packages' own services are not wanted: tests start their own instances on 127.0.0.1.
"${as_root[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
for service in nginx squid; do
    "${as_root[@]}" systemctl disable --now "$service" >/dev/null 2>&1 || true
    "${as_root[@]}" service "$service" stop >/dev/null 2>&1 || true
done
