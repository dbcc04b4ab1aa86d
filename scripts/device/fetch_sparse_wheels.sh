#!/usr/bin/env bash
# Here, before a GPU session for issue 8: the wheels that the lent machine lacks for the sparse model
# (spconv's CUDA 12.4 build and its pure-Python needs, about 95 MB), for its Python 3.12, into DIR. Then
#   scripts/device/pack_wheels.sh pack DIR .whl-sparse/sparse-wheels.tar.xz   (about 40 MB; .whl-sparse/ is git-ignored)
# and in one call carrying .whl and .whl-sparse:
#   scripts/device/pack_wheels.sh unpack .whl-sparse/sparse-wheels.tar.xz /tmp/wheels &&
#   scripts/device/sparse_gpu.sh $OUT /tmp/wheels .whl   (.whl: the harness's omegaconf, antlr4 and mlperf-logging wheels)
# Usage: scripts/device/fetch_sparse_wheels.sh DIR
set -euo pipefail
DIR=${1:?folder}
PY=${PYTHON:-python3}
$PY -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
    --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 --platform any \
    -d "$DIR" spconv-cu124==2.3.8 cumm-cu124==0.7.11 pccm==0.4.16 ccimport==0.4.4 fire==0.7.1 lark==1.2.2 \
    termcolor==3.1.0
ls -la "$DIR"
