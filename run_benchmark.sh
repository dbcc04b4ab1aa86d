#!/usr/bin/env bash
# What a site runs. Without arguments: set up .venv on first use, then run the
# default job, a short training of a small UResNet on synthetic events that
# prints metrics and throughput. Arguments are passed on as key=value settings
# (they override the defaults below), e.g. ./run_benchmark.sh run.iterations=100
set -euo pipefail
cd "$(dirname "$0")"
scripts/setup.sh
DEFAULT_JOB=(
    mode=train
    run.id="quickstart-$(date +%Y%m%d-%H%M%S)"
    data.synthetic=true
    data.synthetic_events=256
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
exec .venv/bin/python bin/exec.py "${DEFAULT_JOB[@]}" "$@"
