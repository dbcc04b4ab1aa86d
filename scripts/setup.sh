#!/usr/bin/env bash
# Create .venv with the pinned environment; a no-op when the requirements are unchanged.
#   scripts/setup.sh         what the benchmark needs (requirements.txt)
#   scripts/setup.sh --dev   plus what the tests need (requirements-dev.txt: pytest, larcv3)
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
files=(requirements.txt pyproject.toml)
if [ "${1:-}" = "--dev" ]; then
    files+=(requirements-dev.txt)
fi
if [ ! -x .venv/bin/python ]; then
    "$PYTHON" -m venv .venv
fi
pip() { .venv/bin/python -m pip --quiet "$@" 2> >(grep -v "is ignored: it is neither" >&2); }
stamp=.venv/.requirements.sha256
want=$(cat "${files[@]}" | sha256sum | cut -d' ' -f1)
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ] && [ "$(cat "$stamp.dev" 2>/dev/null)" != "$want" ]; then
    echo "setting up .venv from ${files[*]} ..."
    pip install --upgrade pip
    pip install -r requirements.txt
    pip install --no-deps -e .
    if [ "${1:-}" = "--dev" ]; then
        # larcv3 builds from source against the system HDF5.
        if ! dpkg -s libhdf5-dev >/dev/null 2>&1; then
            echo "installing libhdf5-dev (needed to build larcv3) ..."
            apt-get update -qq && apt-get install -y -qq libhdf5-dev >/dev/null
        fi
        echo "installing requirements-dev.txt (a first larcv3 build takes about 10 minutes) ..."
        CMAKE_POLICY_VERSION_MINIMUM=3.5 MAKEFLAGS="-j$(nproc)" pip install -r requirements-dev.txt
        echo "$want" > "$stamp.dev"
    else
        echo "$want" > "$stamp"
    fi
fi
