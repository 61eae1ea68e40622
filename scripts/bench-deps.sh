#!/usr/bin/env bash
# Installs what bench/gateway.py compares Gate against: nginx and wrk from Debian (when
# missing and we are root), and LiteLLM's proxy in a venv of its own, outside the repo, so
# its pins never touch .venv. Safe to run again: it only does what is missing.
#   LITELLM_VENV  where the LiteLLM venv goes (default: ~/.cache/gate-bench/litellm-venv)
#   LITELLM_SPEC  what pip installs there (default: litellm[proxy])
set -euo pipefail

needed=(nginx wrk)
missing=()
for pkg in "${needed[@]}"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
if [ ${#missing[@]} -gt 0 ]; then
    if [ "$(id -u)" -ne 0 ]; then
        echo "missing Debian packages: ${missing[*]} (run as root, or: sudo apt-get install ${missing[*]})" >&2
        exit 1
    fi
    echo "installing: ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    # Only the binaries: the bench runs nginx in the foreground with its own config, so the
    # packaged service must not start (policy-rc.d 101 = "do not start").
    policy=/usr/sbin/policy-rc.d
    made_policy=0
    if [ ! -e "$policy" ]; then
        printf '#!/bin/sh\nexit 101\n' >"$policy"
        chmod +x "$policy"
        made_policy=1
    fi
    apt-get install -y -qq --no-install-recommends "${missing[@]}" || status=$?
    [ "$made_policy" -eq 1 ] && rm -f "$policy"
    [ "${status:-0}" -eq 0 ] || exit "$status"
fi

venv="${LITELLM_VENV:-$HOME/.cache/gate-bench/litellm-venv}"
spec="${LITELLM_SPEC:-litellm[proxy]}"
if [ ! -x "$venv/bin/litellm" ]; then
    echo "creating the LiteLLM venv in $venv ($spec)"
    python3 -m venv "$venv"
    "$venv/bin/python" -m pip install --quiet --upgrade pip
    "$venv/bin/python" -m pip install --quiet "$spec"
fi
