#!/usr/bin/env bash
# Input-pipeline benchmark (a script that prints figures, not a test):
# generates 1,000 full-resolution events once (timed), then runs mode=iotest
# on them at data.downsample=1 three times and prints images/s and where the
# time goes. Usage: scripts/bench_input_pipeline.sh [extra key=value settings]
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
PY=.venv/bin/python
DATA=.cache/datasets/bench-1000-seed1
if [ ! -f "$DATA/manifest.json" ]; then
    start=$(date +%s%N)
    $PY -m benchmark.data generate --out "$DATA" --train 1000 --val 0 --test 0 --seed 1
    echo "generation of 1,000 full-resolution events (written and hashed): $(( ($(date +%s%N) - start) / 1000000 )) ms"
fi
for seed in 1 2 3; do
    $PY bin/exec.py mode=iotest run.id=bench-io data.data_directory="$DATA" data.downsample=1 \
        run.minibatch_size=8 run.iterations=100 data.seed=$seed run.output_dir=/tmp/bench-io "$@" | sed -n '/^iotest:/,$p'
done
