#!/usr/bin/env bash
# On a lent GPU machine (issue 7): the reference and the optimized PyTorch paths side by side
# with `python -m benchmark.perf`, for uresnet and a21 at 640x1024 and uresnet at 1280x2048,
# in bfloat16 (and uresnet 640x1024 in tf32), plus the largest batch within 70 GiB; each table
# goes to OUTDIR/<case>.txt with the software versions in OUTDIR/versions.txt.
# Prepared for the device: about 8 minutes (torch.compile's first compilation included).
# Usage: scripts/device/perf_gpu.sh OUTDIR
set -uo pipefail
cd "$(dirname "$0")/../.."
OUT=${1:?outdir}
PY=${PYTHON:-python3}
mkdir -p "$OUT"
{ nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
  $PY -c "import torch; print('torch', torch.__version__, 'cuda', torch.version.cuda, 'cudnn', torch.backends.cudnn.version())"
} > "$OUT/versions.txt" 2>&1
run() {  # case-name perf-arguments...
    local name=$1; shift
    echo "== $name: python -m benchmark.perf $*" | tee "$OUT/$name.txt"
    timeout 170 $PY -m benchmark.perf "$@" run.compute_mode=GPU data.workers=4 >> "$OUT/$name.txt" 2>&1 \
        || echo "($name did not finish: exit status $?)" >> "$OUT/$name.txt"
    tail -n 8 "$OUT/$name.txt"
}
run uresnet-640x1024-bf16 --network uresnet --downsample 1 --batch 8 --precision bfloat16 --steps 20 --max-batch 70
run a21-640x1024-bf16 --network a21 --downsample 1 --batch 16 --precision bfloat16 --steps 20
run uresnet-640x1024-tf32 --network uresnet --downsample 1 --batch 8 --precision tf32 --steps 20
run uresnet-1280x2048-bf16 --network uresnet --downsample 0 --batch 2 --precision bfloat16 --steps 10
