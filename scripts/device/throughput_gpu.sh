#!/usr/bin/env bash
# On a lent GPU machine: describe it, then run the throughput benchmark with the
# reference PyTorch path in bfloat16 and tf32; the MLPerf logs and the system
# description land in OUTDIR, to be checked and stored with
# `python -m benchmark.compliance check` and `python -m benchmark.results store`.
# Usage: scripts/device/throughput_gpu.sh OUTDIR SYSTEM_NAME
set -uo pipefail
cd "$(dirname "$0")/../.."
OUT=${1:?outdir} NAME=${2:?system name}
PY=${PYTHON:-python3}
$PY -m benchmark.systems describe --name "$NAME" --out "$OUT" --division open --status research
for precision in bfloat16 tf32; do
    $PY bin/exec.py mode=train benchmark=throughput run.id="tp-$precision" run.output_dir="$OUT/tp-$precision" \
        run.system="$OUT/$NAME.json" run.compute_mode=GPU run.precision="$precision" run.minibatch_size=8 \
        data.workers=4 mode.logging_iteration=10 > "$OUT/tp-$precision.txt" 2>&1
    cp "$OUT/tp-$precision/mlperf.log" "$OUT/mlperf-$precision.log"
    grep -E "throughput:|peak memory" "$OUT/tp-$precision.txt"
done
