#!/usr/bin/env bash
# On a lent GPU machine (issue 7): the reference and the optimized PyTorch paths side by side
# with `python -m benchmark.perf`, most important case first, each under its own time limit so
# that a slow compilation costs one case, not the lease:
#   uresnet 640x1024 bf16 batch 8 (both paths, with a profile of 3 steps of each),
#   a21 640x1024 bf16 batch 16, uresnet 1280x2048 bf16 batch 2 (both paths),
#   the reference alone in float32 and tf32 (upstream's published precisions),
#   and the largest reference batch within 70 GiB.
# Each table goes to OUTDIR/<case>.txt, software versions to OUTDIR/versions.txt.
# About 8 minutes in the worst case (torch.compile's first compilations included).
# Usage: scripts/device/perf_gpu.sh OUTDIR
set -uo pipefail
cd "$(dirname "$0")/../.."
OUT=${1:?outdir}
PY=${PYTHON:-python3}
export PYTHONUNBUFFERED=1
mkdir -p "$OUT"
{ nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.max.sm --format=csv,noheader
  $PY -c "import torch, numpy; print('torch', torch.__version__, 'cuda', torch.version.cuda, 'cudnn', torch.backends.cudnn.version(), 'numpy', numpy.__version__)"
  $PY -c "import triton; print('triton', triton.__version__)"
  echo "host: $(nproc) cores"
} > "$OUT/versions.txt" 2>&1
cat "$OUT/versions.txt"
run() {  # case-name seconds perf-arguments...
    local name=$1 limit=$2; shift 2
    echo "== $name: python -m benchmark.perf run.compute_mode=${COMPUTE_MODE:-GPU} data.workers=4 $*" | tee -a "$OUT/$name.txt"
    timeout "$limit" $PY -m benchmark.perf run.compute_mode=${COMPUTE_MODE:-GPU} data.workers=4 "$@" >> "$OUT/$name.txt" 2>&1 \
        || echo "($name did not finish: exit status $?)" >> "$OUT/$name.txt"
    grep -E "^\||^input|^largest|images/s$|did not finish|^error" "$OUT/$name.txt" | tail -n 8
}
run uresnet-640x1024-bf16 170 --network uresnet --downsample 1 --batch 8 --precision bfloat16 --steps 20 --warmup 4 \
    --profile /tmp/perf_profile
run a21-640x1024-bf16 110 --network a21 --downsample 1 --batch 16 --precision bfloat16 --steps 20 --warmup 4
run uresnet-1280x2048-bf16 120 --network uresnet --downsample 0 --batch 2 --precision bfloat16 --steps 10 --warmup 4
run uresnet-640x1024-reference 40 --network uresnet --downsample 1 --batch 4 --precision float32 --steps 5 --warmup 2 \
    --paths reference
run uresnet-640x1024-reference 40 --network uresnet --downsample 1 --batch 4 --precision tf32 --steps 5 --warmup 2 \
    --paths reference
run uresnet-640x1024-max-batch 60 --network uresnet --downsample 1 --batch 8 --precision bfloat16 --steps 3 --warmup 1 \
    --paths reference --max-batch 70
