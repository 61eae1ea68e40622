#!/usr/bin/env bash
# Installs the Debian packages Gate needs, when they are missing and we are root.
# `system-deps.sh` is what running a node needs; `system-deps.sh test` adds the test rig's.
# libgmp-dev: py-libp2p builds fastecdsa from source, which needs the GMP headers.
# Test rig only:
# openssl: a test reads a key written by `openssl genpkey`.
# iproute2: the network-namespace test (`ip netns`, veth pairs).
# nix-bin: `nix-instantiate --parse flake.nix` checks the flake.
# fish, zsh: `gate completion` scripts are loaded in the shells they are for.
# chromium: the web UI's browser tests (tests/web) drive it through playwright, which cannot
#   download a browser of its own here.
set -euo pipefail
needed=(libgmp-dev)
if [ "${1:-}" = "test" ]; then
    needed+=(openssl iproute2 nix-bin fish zsh chromium)
fi
missing=()
for pkg in "${needed[@]}"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
if [ ${#missing[@]} -eq 0 ]; then
    exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
    echo "missing Debian packages: ${missing[*]} (run as root, or: sudo apt-get install ${missing[*]})" >&2
    exit 1
fi
echo "installing: ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}"
