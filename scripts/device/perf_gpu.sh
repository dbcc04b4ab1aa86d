#!/usr/bin/env bash
# On a lent GPU machine (issue 7): the reference and the optimized PyTorch paths side by side
# with `python -m benchmark.perf`, one case after another, each under its own time limit so that
# a slow compilation costs one case, not the lease. Cases (default: the first three):
#   uresnet-640    uresnet 640x1024 bf16 batch 8, both paths, with a profile of 3 steps of each (~4 min)
#   a21-640        a21 640x1024 bf16 batch 16, both paths (~3 min)
#   uresnet-1280   uresnet 1280x2048 bf16 batch 2, both paths (~4 min)
#   reference-fp   the reference alone in float32 and tf32, upstream's published precisions (~1.5 min)
#   max-batch      the largest reference batch within 70 GiB (about 4 trials, each a fresh process; ~3 min)
#   autotune-640   uresnet 640x1024 bf16 batch 8, the optimized path alone with
#                  framework.compile_mode=max-autotune (Triton convolution templates; compiles longer)
#   conv-640       the thin 3x3 convolutions of uresnet's top 4 levels alone (scripts/bench_convolutions.py):
#                  cuDNN against max-autotune's Triton templates, against the memory roofline (~2 min); run it
#                  before autotune-640, which pays the whole network's autotuning
# torch.compile's first compilation of uresnet at 640x1024 took 124 s on an H200 (2026-11-27),
# so the three default cases need about 11 minutes: more than one call's 10; split them.
# The input pipeline is measured with 8 worker processes: 4 worker threads generated only 67-106
# synthetic images/s there, less than the optimized a21 trains.
# Each table goes to OUTDIR/<case>.txt, software versions to OUTDIR/versions.txt.
# Usage: scripts/device/perf_gpu.sh OUTDIR [case ...]
set -uo pipefail
cd "$(dirname "$0")/../.."
OUT=${1:?outdir}
shift
PY=${PYTHON:-python3}
export PYTHONUNBUFFERED=1
mkdir -p "$OUT"
{ nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.max.sm --format=csv,noheader
  $PY -c "import torch, numpy; print('torch', torch.__version__, 'cuda', torch.version.cuda, 'cudnn', torch.backends.cudnn.version(), 'numpy', numpy.__version__)"
  $PY -c "import triton; print('triton', triton.__version__)"
  echo "host: $(nproc) cores; commit $(git rev-parse --short HEAD 2>/dev/null || echo unknown)"
} > "$OUT/versions.txt" 2>&1
cat "$OUT/versions.txt"
timed_case() {  # name seconds command...: the command's output into OUT/name.txt, under its own time limit
    local name=$1 limit=$2; shift 2
    echo "== $name: $*" | tee -a "$OUT/$name.txt"
    timeout "$limit" "$@" >> "$OUT/$name.txt" 2>&1 || echo "($name did not finish: exit status $?)" >> "$OUT/$name.txt"
    grep -E "^\||^input|^largest|images/s$|took|did not finish|^error" "$OUT/$name.txt" | tail -n 12
}
perf() {  # name seconds perf-arguments...
    local name=$1 limit=$2; shift 2
    timed_case "$name" "$limit" $PY -m benchmark.perf run.compute_mode=${COMPUTE_MODE:-GPU} data.workers=8 \
        data.worker_processes=true "$@"
}
case_() {
    case $1 in
    uresnet-640) perf "$1" 300 --network uresnet --downsample 1 --batch 8 --precision bfloat16 --steps 20 --warmup 4 \
        --profile /tmp/perf_profile ;;
    a21-640) perf "$1" 240 --network a21 --downsample 1 --batch 16 --precision bfloat16 --steps 20 --warmup 4 ;;
    uresnet-1280) perf "$1" 300 --network uresnet --downsample 0 --batch 2 --precision bfloat16 --steps 10 --warmup 4 ;;
    reference-fp)
        perf "$1" 60 --network uresnet --downsample 1 --batch 4 --precision float32 --steps 5 --warmup 2 --paths reference
        perf "$1" 60 --network uresnet --downsample 1 --batch 4 --precision tf32 --steps 5 --warmup 2 --paths reference ;;
    max-batch) perf "$1" 240 --network uresnet --downsample 1 --batch 8 --precision bfloat16 --steps 3 --warmup 1 \
        --paths reference --max-batch 70 ;;
    autotune-640) perf "$1" 540 --network uresnet --downsample 1 --batch 8 --precision bfloat16 --steps 20 --warmup 4 \
        --paths optimized framework.compile_mode=max-autotune ;;
    conv-640) timed_case "$1" 240 $PY scripts/bench_convolutions.py --levels 4 --compile-mode max-autotune ;;
    *) echo "unknown case: $1 (uresnet-640 a21-640 uresnet-1280 reference-fp max-batch autotune-640 conv-640)" >&2; return 2 ;;
    esac
}
for name in "${@:-uresnet-640 a21-640 uresnet-1280}"; do
    for each in $name; do case_ "$each"; done
done
