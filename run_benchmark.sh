#!/usr/bin/env bash
# What a site runs. Without arguments: set up .venv on first use, generate
# (once, cached under .cache/datasets/) a small realistic dataset in the real
# larcv3 format, then train a small UResNet on it for 60 steps, printing
# metrics and throughput. Arguments are passed on as key=value settings (they
# override the defaults below), e.g. ./run_benchmark.sh run.iterations=200
set -euo pipefail
cd "$(dirname "$0")"
scripts/setup.sh
PY=.venv/bin/python
version=$($PY -c "from benchmark.data.generator import GENERATOR_VERSION; print(GENERATOR_VERSION)")
DATA=.cache/datasets/quickstart-v${version}-seed1
if [ ! -f "$DATA/manifest.json" ]; then
    echo "generating the default dataset in $DATA (256 training, 64 validation, 64 test events; once) ..."
    $PY -m benchmark.data generate --out "$DATA" --train 256 --val 64 --test 64 --seed 1 --compression gzip
fi
DEFAULT_JOB=(
    mode=train
    run.id="quickstart-$(date +%Y%m%d-%H%M%S)"
    data.data_directory="$DATA"
    data.file=cosmic_tagging_train.h5
    data.aux_file=cosmic_tagging_val.h5
    data.downsample=3
    network=a21
    network.network_depth=4
    run.minibatch_size=4
    run.iterations=60
    run.aux_iterations=20
    run.aux_minibatch_size=8
    mode.logging_iteration=10
    mode.optimizer.lr_schedule=flat
    mode.optimizer.learning_rate=0.001
)
exec $PY bin/exec.py "${DEFAULT_JOB[@]}" "$@"
