#!/usr/bin/env bash
# Installs llama-cpp-python (with what `python -m llama_cpp.server` needs) and gguf into a venv.
# PyPI has only the sdist, which compiles llama.cpp (about 7 min on 2 cores), so the built wheel is
# kept in a cache dir and reused by every later run on the machine.
#
#   usage: scripts/llama-wheel.sh [VENV]     (default .venv)
#   env:   GATE_WHEEL_CACHE                  (default ~/.cache/gate-wheels)
set -euo pipefail

LLAMA_VERSION=0.3.36
GGUF_VERSION=0.19.0
VENV=${1:-.venv}
CACHE=${GATE_WHEEL_CACHE:-$HOME/.cache/gate-wheels}
PY=$VENV/bin/python

if [ ! -x "$PY" ]; then
    echo "llama-wheel: no python at $PY; create the venv first (make, or python3 -m venv $VENV)" >&2
    exit 1
fi

# Quick path: the pinned versions are there, the shared library loads and the server's
# dependencies import. Importing llama_cpp (not just finding it) catches a wheel built for
# another CPU or a half-finished install.
installed() {
    "$PY" - "$LLAMA_VERSION" "$GGUF_VERSION" <<'EOF' 2>/dev/null
import importlib.metadata as md
import sys

import fastapi, gguf, llama_cpp, pydantic_settings, sse_starlette, starlette_context, uvicorn  # noqa

want = {"llama_cpp_python": sys.argv[1], "gguf": sys.argv[2]}
sys.exit(0 if all(md.version(name) == v for name, v in want.items()) else 1)
EOF
}
if installed; then
    echo "llama-wheel: llama-cpp-python $LLAMA_VERSION and gguf $GGUF_VERSION already in $VENV"
    exit 0
fi

pip_() { "$PY" -m pip --disable-pip-version-check "$@"; }

# pip, not a file-name glob, decides whether a cached wheel fits this Python and platform.
cached_wheel_fits() {
    pip_ install --quiet --dry-run --no-deps --no-index --only-binary=:all: \
        --find-links "$CACHE" "llama-cpp-python==$LLAMA_VERSION" >/dev/null 2>&1
}

mkdir -p "$CACHE"
# Two runs at once (make -j, two checkouts) would otherwise both spend 7 minutes building.
exec 9>"$CACHE/.llama-wheel.lock"
flock 9

if cached_wheel_fits; then
    echo "llama-wheel: using the cached llama-cpp-python $LLAMA_VERSION wheel in $CACHE"
else
    for tool in cc c++; do
        if ! command -v "$tool" >/dev/null; then
            echo "llama-wheel: building llama.cpp needs a C/C++ compiler ($tool): apt-get install g++" >&2
            exit 1
        fi
    done
    echo "llama-wheel: building llama-cpp-python $LLAMA_VERSION into $CACHE (about 7 min on 2 cores)"
    build=$(mktemp -d "$CACHE/.build.XXXXXX")
    trap 'rm -rf "$build"' EXIT
    # GGML_NATIVE=OFF: the wheel must run on any x86-64 machine that gets the cache, not only the
    # CPU it was built on. LLAVA_BUILD=OFF: no multimodal tools, a shorter build.
    # --no-cache-dir: pip's own wheel cache ignores CMAKE_ARGS, so it could hand back a wheel that
    # an earlier plain `pip install llama-cpp-python` built with other flags.
    CMAKE_ARGS="-DGGML_NATIVE=OFF -DLLAVA_BUILD=OFF" \
        pip_ wheel --no-cache-dir --no-deps "llama-cpp-python==$LLAMA_VERSION" -w "$build"
    # Moved in only once complete, so an interrupted build never leaves a broken wheel cached.
    mv "$build"/llama_cpp_python-"$LLAMA_VERSION"-*.whl "$CACHE"/
    if ! cached_wheel_fits; then
        echo "llama-wheel: the wheel built in $CACHE does not install on this python" >&2
        exit 1
    fi
fi

# --only-binary keeps pip from ever falling back to the PyPI sdist (a silent 7-minute build).
# The [server] extra brings uvicorn, fastapi, sse-starlette, starlette-context and
# pydantic-settings; pip's default only-if-needed strategy keeps the venv's starlette, anyio
# and pydantic where they already satisfy them.
pip_ install --quiet --find-links "$CACHE" --only-binary=llama-cpp-python \
    "llama-cpp-python[server]==$LLAMA_VERSION" "gguf==$GGUF_VERSION"
pip_ check

if ! installed; then
    echo "llama-wheel: installed, but llama_cpp or the server dependencies do not import in $PY" >&2
    exit 1
fi
echo "llama-wheel: llama-cpp-python $LLAMA_VERSION and gguf $GGUF_VERSION installed in $VENV"
