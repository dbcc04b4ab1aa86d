#!/usr/bin/env bash
# GPU check of the foundation (issue 2), run on a lent GPU machine:
# every precision trains the default network at 640x1024 on the GPU, a run
# resumes, inference and summary run, and a table of images/s and peak memory
# is printed last. Usage: scripts/device/foundation_gpu_check.sh OUTDIR
set -uo pipefail
cd "$(dirname "$0")/../.."
OUT=${1:-/tmp/foundation-gpu}
mkdir -p "$OUT"
PY=${PYTHON:-python3}
COMMON=(data.synthetic=true data.synthetic_events=64 run.compute_mode=GPU run.aux_iterations=0
        mode.checkpoint_iteration=0 run.seed=7 data.seed=7 mode.logging_iteration=5)
table="$OUT/table.txt"
echo "| network | precision | batch | images/s | peak GiB |" > "$table"
run() {  # name network precision batch iterations [extra...]
    local name=$1 net=$2 prec=$3 batch=$4 iters=$5; shift 5
    $PY bin/exec.py mode=train run.id="$name" run.output_dir="$OUT/$name" network="$net" run.precision="$prec" \
        run.minibatch_size="$batch" run.iterations="$iters" "${COMMON[@]}" "$@" > "$OUT/$name.log" 2>&1
    local rc=$?
    local rate=$(grep -o 'throughput: [0-9.]*' "$OUT/$name.log" | awk '{print $2}')
    local peak=$(grep -o 'peak memory: [0-9.]*' "$OUT/$name.log" | awk '{print $3}')
    echo "| $net | $prec | $batch | ${rate:-FAILED rc=$rc} | ${peak:-} |" >> "$table"
    tail -3 "$OUT/$name.log"
}
for prec in float32 tf32 mixed bfloat16; do
    run "uresnet-$prec" uresnet "$prec" 4 12
done
run a21-tf32 a21 tf32 8 12
run a21-bfloat16 a21 bfloat16 8 12
# Resume on the GPU: 3 steps, then continue to 6; compare with 6 uninterrupted steps.
R=(run.aux_iterations=0 mode.checkpoint_iteration=3 run.precision=float32 run.minibatch_size=2 network=a21)
$PY bin/exec.py mode=train run.id=whole run.output_dir="$OUT/whole" run.iterations=6 "${COMMON[@]}" "${R[@]}" > "$OUT/whole.log" 2>&1
$PY bin/exec.py mode=train run.id=split run.output_dir="$OUT/split" run.iterations=3 "${COMMON[@]}" "${R[@]}" > "$OUT/split.log" 2>&1
$PY bin/exec.py mode=train run.id=split run.output_dir="$OUT/split" run.iterations=6 "${COMMON[@]}" "${R[@]}" >> "$OUT/split.log" 2>&1
echo "resume (loss per step, whole vs split):"; paste -d' ' <(cut -d, -f1,4 "$OUT/whole/train_metrics.csv") <(cut -d, -f4 "$OUT/split/train_metrics.csv")
$PY bin/exec.py mode=inference run.id=whole run.output_dir="$OUT/whole" network=a21 "${COMMON[@]}" data.synthetic_events=16 run.minibatch_size=4 > "$OUT/inference.log" 2>&1 \
    && grep -A3 "INFERENCE REPORT" "$OUT/inference.log" || tail -5 "$OUT/inference.log"
$PY bin/exec.py mode=summary run.id=size run.output_dir="$OUT/size" run.compute_mode=GPU > "$OUT/summary.log" 2>&1 && grep -A7 -- "-- SUMMARY" "$OUT/summary.log"
$PY -c "import torch; print('torch', torch.__version__, 'cuda', torch.version.cuda, torch.cuda.get_device_name(0))"
cat "$table"
