#!/usr/bin/env bash
# Build Horovod 0.28.1 from its sdist (PyPI has no Linux wheel) with PyTorch and TensorFlow
# support and the MPI and Gloo controllers, and install it into .venv.
#   - a no-op when .venv already imports horovod.torch and horovod.tensorflow at 0.28.1;
#   - the built wheel is kept in .cache/wheels/ (one folder per Python/torch/TF version), so a
#     second set-up on the same machine only reinstalls it;
#   - ccache (installed here) makes a rebuild after a cache miss fast: cold ~6-10 min on 2 cores.
# Needs .venv with torch and tensorflow(-cpu) installed first (scripts/setup.sh).
set -euo pipefail
cd "$(dirname "$0")/.."

HOROVOD_VERSION=0.28.1
PY=.venv/bin/python
export TF_CPP_MIN_LOG_LEVEL=3   # keep TensorFlow's start-up chatter out of the checks

horovod_ok() {
    "$PY" - "$HOROVOD_VERSION" <<'EOF' >/dev/null 2>&1
import sys
import horovod, horovod.torch as ht, horovod.tensorflow as htf
assert horovod.__version__ == sys.argv[1], horovod.__version__
for m in (ht, htf):
    assert m.mpi_built() and m.gloo_built()
EOF
}

if [ ! -x "$PY" ]; then
    echo "build_horovod.sh: $PY not found; run scripts/setup.sh first" >&2
    exit 1
fi
if horovod_ok; then
    echo "horovod $HOROVOD_VERSION (torch, tensorflow, MPI, Gloo) already installed"
    exit 0
fi

# System packages: Open MPI (MPI controller, mpirun), a C++ tool chain, cmake, and ccache
# (horovod's CMakeLists uses ccache by itself when it is on PATH).
missing=()
for pkg in openmpi-bin libopenmpi-dev ccache; do
    dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg")
done
command -v cmake >/dev/null || missing+=(cmake)
command -v g++ >/dev/null || missing+=(g++)
command -v make >/dev/null || missing+=(make)
if [ ${#missing[@]} -gt 0 ]; then
    echo "installing ${missing[*]} (apt) ..."
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
fi

# Build helpers and horovod's run-time dependencies, pinned.
pip() { "$PY" -m pip --quiet "$@" 2> >(grep -v "is ignored: it is neither" >&2); }
pip install -r requirements-horovod.txt

# The wheel is only valid for the Python, torch and TensorFlow it was compiled against.
key=$("$PY" - <<'EOF' 2>/dev/null
import sys, importlib.metadata as md
def ver(*names):
    for n in names:
        try:
            return md.version(n)
        except md.PackageNotFoundError:
            pass
    raise SystemExit(f"none of {names} is installed in .venv")
print(f"cp{sys.version_info.major}{sys.version_info.minor}-torch{ver('torch')}-tf{ver('tensorflow-cpu', 'tensorflow')}")
EOF
) || { echo "build_horovod.sh: .venv needs torch and tensorflow(-cpu) installed first" >&2; exit 1; }
wheel_dir=.cache/wheels/horovod-$HOROVOD_VERSION-$key
wheel=$(ls "$wheel_dir"/horovod-$HOROVOD_VERSION-*.whl 2>/dev/null | head -n1 || true)

if [ -z "$wheel" ]; then
    tmp=$(mktemp -d)
    trap 'rm -rf "$tmp"' EXIT
    echo "downloading the horovod $HOROVOD_VERSION sdist ..."
    pip download --no-deps --no-binary :all: "horovod==$HOROVOD_VERSION" -d "$tmp"
    tar -xzf "$tmp/horovod-$HOROVOD_VERSION.tar.gz" -C "$tmp"
    src=$tmp/horovod-$HOROVOD_VERSION

    # apply_patch FILE PATTERN SED-SCRIPT: fail loudly if PATTERN is not in FILE (the sdist changed).
    apply_patch() {
        if ! grep -q -- "$2" "$src/$1"; then
            echo "build_horovod.sh: patch no longer applies: '$2' not found in $1" >&2
            exit 1
        fi
        sed -i -- "$3" "$src/$1"
        if grep -q -- "$2" "$src/$1"; then
            echo "build_horovod.sh: patch did not apply: '$2' still in $1" >&2
            exit 1
        fi
    }
    # torch >= 2.1 headers require C++17 (#error otherwise), but horovod sets C++14 for torch.
    apply_patch horovod/torch/CMakeLists.txt 'set(CMAKE_CXX_STANDARD 14)' 's/set(CMAKE_CXX_STANDARD 14)/set(CMAKE_CXX_STANDARD 17)/'
    # The top level too: with gloo built as C++14 and the torch ops as C++17, linking fails on
    # duplicate definitions of gloo's static constexpr members (e.g. Store::kDefaultTimeout).
    apply_patch CMakeLists.txt 'set(CMAKE_CXX_STANDARD 14)' 's/set(CMAKE_CXX_STANDARD 14)/set(CMAKE_CXX_STANDARD 17)/'
    # xla_mpi_ops.cc includes XLA headers that need highwayhash, which TF 2.21 does not ship;
    # it only serves XLA-compiled collectives on GPU.
    apply_patch horovod/tensorflow/CMakeLists.txt 'xla_mpi_ops\.cc' '/xla_mpi_ops\.cc/d'

    echo "building horovod $HOROVOD_VERSION (torch + tensorflow, MPI + Gloo); cold ~6-10 min on 2 cores ..."
    start=$SECONDS
    mkdir -p .cache "$tmp/wheel"
    log=.cache/horovod-build.log
    # --no-build-isolation: setup.py imports torch and tensorflow from .venv.
    # CCACHE_BASEDIR/CCACHE_NOHASHDIR: the source lies in a new temp dir each time; make the
    # compiler's paths relative and ignore the build dir so ccache still hits on a rebuild.
    if ! HOROVOD_WITH_PYTORCH=1 HOROVOD_WITH_TENSORFLOW=1 HOROVOD_WITHOUT_MXNET=1 \
        HOROVOD_WITH_GLOO=1 HOROVOD_WITH_MPI=1 \
        MAKEFLAGS="${MAKEFLAGS:--j$(nproc)}" CCACHE_BASEDIR="$tmp" CCACHE_NOHASHDIR=1 \
        "$PY" -m pip wheel --no-build-isolation --no-deps -v -w "$tmp/wheel" "$src" >"$log" 2>&1; then
        tail -n 40 "$log" >&2
        echo "build_horovod.sh: horovod build failed; full log in $log" >&2
        exit 1
    fi
    echo "built in $((SECONDS - start)) s (log: $log)"
    mkdir -p "$wheel_dir"
    mv "$tmp"/wheel/horovod-$HOROVOD_VERSION-*.whl "$wheel_dir/"
    wheel=$(ls "$wheel_dir"/horovod-$HOROVOD_VERSION-*.whl | head -n1)
else
    echo "reusing $wheel"
fi

pip install --no-deps --force-reinstall "$wheel"
if ! horovod_ok; then
    echo "build_horovod.sh: horovod installed from $wheel but does not import (delete $wheel_dir to rebuild); see:" >&2
    "$PY" -c "import horovod.torch, horovod.tensorflow" >&2 || true
    exit 1
fi
echo "horovod $HOROVOD_VERSION installed (torch, tensorflow, MPI, Gloo)"
