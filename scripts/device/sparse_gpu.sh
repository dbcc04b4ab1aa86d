#!/usr/bin/env bash
# On a lent GPU machine (issue 8): the dense 2D and the sparse PyTorch models side by side (a21 at
# 640x1024 with its full depth; scripts/bench_frameworks.py: training and inference images/s, peak memory), after
# installing spconv's CUDA build from the WHEELS folders into /tmp/site. The wheels (about 95 MB: spconv-cu124,
# cumm-cu124 and their pure-Python needs, from scripts/device/fetch_sparse_wheels.sh) are more than
# one call carries as they are: pack them with scripts/device/pack_wheels.sh (about 40 MB) and unpack them there first.
# Usage: scripts/device/sparse_gpu.sh OUTDIR WHEELS...   (every *.whl of each folder is installed)
set -uo pipefail
cd "$(dirname "$0")/../.."
OUT=${1:?outdir}
shift
[ $# -gt 0 ] || { echo "error: name the folders of wheels to install" >&2; exit 2; }
PY=${PYTHON:-python3}
mkdir -p "$OUT"
$PY -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site \
    $(for folder in "$@"; do ls "$folder"/*.whl; done) || exit 1
export PYTHONPATH=/tmp/site${PYTHONPATH:+:$PYTHONPATH} PYTHONUNBUFFERED=1
{ nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
  $PY -c "import torch, spconv; print('torch', torch.__version__, 'spconv', spconv.__version__)"
} 2>&1 | tee "$OUT/versions.txt"
# TF32 first (float32 storage), then mixed (float16 autocast, which spconv's GPU kernels take); spconv has no
# bfloat16 kernels. The dense model runs at the same precision. Each pass has its own time limit.
for precision in ${PRECISIONS:-tf32 mixed}; do
    timeout "${LIMIT:-240}" $PY scripts/bench_frameworks.py --frameworks torch --modes 2D sparse --repeats 1 \
        network.network_depth=6 data.downsample=1 run.minibatch_size=4 run.precision=$precision \
        run.compute_mode=GPU data.workers=4 2>&1 | tee "$OUT/sparse-vs-dense-$precision.txt"
done
