#!/usr/bin/env bash
# Create .venv with the pinned environment; a no-op when the requirements are unchanged.
#   scripts/setup.sh         what the benchmark needs (requirements.txt)
#   scripts/setup.sh --dev   plus what the tests need (requirements-dev.txt: pytest, larcv3; Open MPI; Horovod,
#                            built from source by scripts/build_horovod.sh)
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
files=(requirements.txt pyproject.toml)
if [ "${1:-}" = "--dev" ]; then
    files+=(requirements-dev.txt requirements-horovod.txt scripts/build_horovod.sh)
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
        # larcv3 builds from source against the system HDF5; the distributed tests run under Open MPI's mpirun.
        missing=()
        for package in libhdf5-dev openmpi-bin libopenmpi-dev; do
            dpkg -s "$package" >/dev/null 2>&1 || missing+=("$package")
        done
        if [ ${#missing[@]} -gt 0 ]; then
            echo "installing ${missing[*]} (larcv3's build, MPI for the distributed tests) ..."
            apt-get update -qq && apt-get install -y -qq "${missing[@]}" >/dev/null
        fi
        echo "installing requirements-dev.txt (a first larcv3 build takes about 10 minutes) ..."
        CMAKE_POLICY_VERSION_MINIMUM=3.5 MAKEFLAGS="-j$(nproc)" pip install -r requirements-dev.txt
        scripts/build_horovod.sh
        echo "$want" > "$stamp.dev"
    else
        echo "$want" > "$stamp"
    fi
fi
