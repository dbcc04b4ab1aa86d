#!/usr/bin/env bash
# What a site runs: set-up on first use, then N runs of a benchmark, each checked
# by the official MLPerf compliance checker and stored under results/ when compliant, then a summary and,
# for a timed benchmark whose results folder holds a submission's runs, the RCP check.
# Without options: one run of the `mini` benchmark on this machine.
set -euo pipefail
cd "$(dirname "$0")"

usage() {
    cat <<'EOF'
usage: ./run_benchmark.sh [options] [-- key=value ...]

  --system NAME        system description systems/NAME.json (default: this host; described on first use)
  --benchmark NAME     closed | mini | throughput (default: mini)
  --framework NAME     torch | tensorflow (default: torch)
  --conv-mode MODE     2D | 3D | sparse (default: 2D; sparse: PyTorch on spconv)
  --optimized          PyTorch 2D/3D: the optimized path (torch.compile, CUDA graphs; framework.optimized=true)
  --runs N             number of runs (default: 1; a submission needs the benchmark's count, 5 for closed and mini)
  --launcher L         local | mpirun | srun | torchrun | any command prefix (default: local)
  --ranks N            total ranks (default: 1); more than one runs data-parallel (run.distributed=true)
  --ranks-per-node N   ranks per node, for the launcher (default: --ranks)
  --distributed-mode M DDP | horovod (default: DDP for torch, horovod for tensorflow; Horovod is built on first use)
  --instances N        weak scaling: N concurrent instances in each run, each on ranks/N ranks (default: 1)
  --data-dir DIR       the dataset (closed: required; mini: generated under .cache/datasets/ when omitted)
  --results DIR        results root (default: results/)
  --seed S             first seed (run i uses S+i); default: drawn from the clock for every run (always logged)
  --clear-cache        drop the page cache before each run (needs root; logged as cache_clear)
  -h, --help           this text
Settings after -- are passed to every run (only those the benchmark lets a submitter tune).
EOF
}

die() { echo "error: $*" >&2; exit 2; }
need() { [ $# -ge 2 ] && [ -n "$2" ] || die "$1 needs a value (see --help)"; }

SYSTEM="" BENCHMARK=mini FRAMEWORK=torch CONV_MODE=2D OPTIMIZED=false RUNS=1 LAUNCHER=local RANKS=1 RANKS_PER_NODE="" MODE="" INSTANCES=1
DATA_DIR="" RESULTS=results SEED="" CLEAR_CACHE=0 EXTRA=()
while [ $# -gt 0 ]; do
    case "$1" in
        --system) need "$@"; SYSTEM=$2; shift 2 ;;
        --benchmark) need "$@"; BENCHMARK=$2; shift 2 ;;
        --framework) need "$@"; FRAMEWORK=$2; shift 2 ;;
        --conv-mode) need "$@"; CONV_MODE=$2; shift 2 ;;
        --optimized) OPTIMIZED=true; shift ;;
        --runs) need "$@"; RUNS=$2; shift 2 ;;
        --launcher) need "$@"; LAUNCHER=$2; shift 2 ;;
        --ranks) need "$@"; RANKS=$2; shift 2 ;;
        --ranks-per-node) need "$@"; RANKS_PER_NODE=$2; shift 2 ;;
        --distributed-mode) need "$@"; MODE=$2; shift 2 ;;
        --instances) need "$@"; INSTANCES=$2; shift 2 ;;
        --data-dir) need "$@"; DATA_DIR=$2; shift 2 ;;
        --results) need "$@"; RESULTS=$2; shift 2 ;;
        --seed) need "$@"; SEED=$2; shift 2 ;;
        --clear-cache) CLEAR_CACHE=1; shift ;;
        -h|--help) usage; exit 0 ;;
        --) shift; EXTRA=("$@"); break ;;
        *) die "unknown option '$1' (see --help)" ;;
    esac
done
case "$BENCHMARK" in closed|mini|throughput) ;; *) die "unknown benchmark '$BENCHMARK': closed, mini or throughput" ;; esac
[[ "$RUNS" =~ ^[1-9][0-9]*$ ]] || die "--runs must be a positive integer, not '$RUNS'"
[[ "$RANKS" =~ ^[1-9][0-9]*$ ]] || die "--ranks must be a positive integer, not '$RANKS'"
[[ "$INSTANCES" =~ ^[1-9][0-9]*$ ]] && [ $((RANKS % INSTANCES)) -eq 0 ] \
    || die "--instances must be a positive integer that divides --ranks ($RANKS), not '$INSTANCES'"
case "$FRAMEWORK" in torch|tensorflow) ;; *) die "unknown framework '$FRAMEWORK': torch or tensorflow" ;; esac
case "$CONV_MODE" in 2D|3D|sparse) ;; *) die "unknown convolution mode '$CONV_MODE': 2D, 3D or sparse" ;; esac
if [ "$OPTIMIZED" = true ] && { [ "$FRAMEWORK" != torch ] || [ "$CONV_MODE" = sparse ]; }; then
    die "--optimized: there is an optimized path for PyTorch 2D and 3D only, not $FRAMEWORK $CONV_MODE"
fi
[ -n "$MODE" ] || { [ "$FRAMEWORK" = tensorflow ] && MODE=horovod || MODE=DDP; }
case "$MODE" in DDP|horovod) ;; *) die "unknown distributed mode '$MODE': DDP or horovod" ;; esac
[ -z "$SEED" ] || [[ "$SEED" =~ ^[1-9][0-9]*$ ]] || die "--seed must be a positive integer, not '$SEED'"
RANKS_PER_NODE=${RANKS_PER_NODE:-$RANKS}
[ "$LAUNCHER" != torchrun ] || [ "$RANKS" -eq "$RANKS_PER_NODE" ] \
    || die "--launcher torchrun starts one node here; give a multi-node torchrun command as --launcher"

scripts/setup.sh
PY=.venv/bin/python
DISTRIBUTED=()
[ "$RANKS" -eq 1 ] || DISTRIBUTED=(run.distributed=true framework.distributed_mode="$MODE" run.instances="$INSTANCES")
# The run's settings, checked before anything is described, built, generated or run.
$PY -m benchmark.config check mode=train benchmark="$BENCHMARK" run.id=check framework.name="$FRAMEWORK" \
    network.conv_mode="$CONV_MODE" framework.optimized="$OPTIMIZED" "${DISTRIBUTED[@]}" "${EXTRA[@]}" > /dev/null || exit 2
[ "$MODE" != horovod ] || [ "$RANKS" -eq 1 ] || scripts/build_horovod.sh

# The system description: given, or this host's (written once).
if [ -z "$SYSTEM" ]; then
    SYSTEM=$(hostname -s 2>/dev/null || echo localhost)
    SYSTEM=${SYSTEM//[^A-Za-z0-9._-]/-}
    if [ ! -f "systems/$SYSTEM.json" ]; then
        echo "describing this host as systems/$SYSTEM.json ..."
        $PY -m benchmark.systems describe --name "$SYSTEM"
    fi
fi
SYSTEM_FILE="systems/$SYSTEM.json"
[ -f "$SYSTEM" ] && SYSTEM_FILE="$SYSTEM" && SYSTEM=$(basename "$SYSTEM" .json)
$PY -m benchmark.systems check "$SYSTEM_FILE" > /dev/null || exit 2
mkdir -p "$RESULTS" 2>/dev/null && [ -w "$RESULTS" ] || die "results directory $RESULTS is not writable"

# The dataset.
if [ "$BENCHMARK" = mini ] && [ -z "$DATA_DIR" ]; then
    DATA_DIR=$($PY -c "import sys; from benchmark.datasets import generated_dataset_folder as f; print(f(sys.argv[1]))" mini)
    if [ ! -f "$DATA_DIR/manifest.json" ]; then
        echo "generating the mini dataset in $DATA_DIR (once) ..."
        $PY -c "import sys; from benchmark.datasets import generate_benchmark_dataset as g; g('mini', sys.argv[1])" "$DATA_DIR"
    fi
fi
[ "$BENCHMARK" != closed ] || [ -n "$DATA_DIR" ] || die "the closed benchmark needs --data-dir (the real CosmicTagger files)"

# How each run is launched.
case "$LAUNCHER" in
    local) PREFIX=() ;;
    mpirun) PREFIX=(mpirun -n "$RANKS" --npernode "$RANKS_PER_NODE") ;;
    srun) PREFIX=(srun --ntasks "$RANKS" --ntasks-per-node "$RANKS_PER_NODE") ;;
    torchrun) PREFIX=(.venv/bin/torchrun --nproc-per-node "$RANKS" --no-python) ;;
    *) read -r -a PREFIX <<< "$LAUNCHER" ;;
esac
DATA=()
[ -z "$DATA_DIR" ] || DATA=(data.data_directory="$DATA_DIR")
IMPLEMENTATION="$FRAMEWORK-$CONV_MODE"
[ "$OPTIMIZED" = false ] || IMPLEMENTATION="$IMPLEMENTATION-optimized"
STAMP=$(date +%Y%m%d-%H%M%S)

failed=0
for i in $(seq 1 "$RUNS"); do
    ID="$BENCHMARK-$SYSTEM-$STAMP-$i"
    OUT="output/runs/$ID"
    SEED_SETTING=(run.seed=0 data.seed=0)
    [ -z "$SEED" ] || SEED_SETTING=(run.seed=$((SEED + i - 1)) data.seed=$((SEED + i - 1)))
    if [ "$CLEAR_CACHE" = 1 ]; then
        sync && echo 3 > /proc/sys/vm/drop_caches && export COSMICTAGGER_CACHE_CLEARED=1 \
            || die "--clear-cache: cannot drop the page cache here (not root?)"
    fi
    echo "=== run $i of $RUNS: benchmark $BENCHMARK, $IMPLEMENTATION, system $SYSTEM, output $OUT"
    status=0
    "${PREFIX[@]}" $PY bin/exec.py mode=train benchmark="$BENCHMARK" run.id="$ID" run.output_dir="$OUT" \
        run.system="$SYSTEM_FILE" framework.name="$FRAMEWORK" network.conv_mode="$CONV_MODE" framework.optimized="$OPTIMIZED" \
        "${DATA[@]}" "${DISTRIBUTED[@]}" "${SEED_SETTING[@]}" "${EXTRA[@]}" || status=$?
    LOGS=("$OUT/mlperf.log")
    [ "$INSTANCES" -eq 1 ] || LOGS=()
    for k in $(seq 0 $((INSTANCES - 1))); do
        [ "$INSTANCES" -eq 1 ] || LOGS+=("$OUT/instance-$k/mlperf.log")
    done
    missing=0
    for log in "${LOGS[@]}"; do
        [ -f "$log" ] || { echo "run $i: $log is missing" >&2; missing=1; }
    done
    if [ "$status" -ne 0 ] || [ "$missing" -ne 0 ]; then
        echo "run $i failed (exit status $status)" >&2
        failed=1
        [ "$missing" -eq 0 ] || continue  # a run that failed but logged is still a result (e.g. aborted)
    fi
    compliant=1
    for log in "${LOGS[@]}"; do
        $PY -m benchmark.compliance check "$log" || compliant=0
    done
    if [ "$compliant" -eq 0 ]; then
        # Stored, it would be scored as a result; it stays in $OUT for a look.
        echo "run $i: not stored in $RESULTS: its MLPerf log fails the compliance checker (kept in $OUT)" >&2
        failed=1
        continue
    fi
    WEAK=()
    [ "$INSTANCES" -eq 1 ] || WEAK=(--weak)
    $PY -m benchmark.results store "${WEAK[@]}" "${LOGS[@]}" --root "$RESULTS" --system "$SYSTEM" \
        --benchmark "$BENCHMARK" --implementation "$IMPLEMENTATION" \
        || { echo "run $i: not stored (kept in $OUT)" >&2; failed=1; }
done
$PY -m benchmark.results summarize "$RESULTS" || failed=1
[ "$failed" -eq 0 ] || echo "error: not every run succeeded and was stored as a compliant result (see above)" >&2

# The RCP check of the submission these runs belong to (MLPerf's rule on the first N runs of the folder under
# the current rules, once it holds N): a timed benchmark's runs that converge faster than its reference runs
# allow are no result.
rcp_failed=0
FOLDER="$RESULTS/$SYSTEM/$BENCHMARK/$IMPLEMENTATION"
if [ "$BENCHMARK" != throughput ] && [ "$INSTANCES" -eq 1 ] && [ -d "$FOLDER" ]; then
    if ! $PY -m benchmark.rcp check --if-complete "$FOLDER"; then
        echo "error: the submission in $FOLDER fails the RCP check (see above): it is no valid result" >&2
        rcp_failed=1
    fi
fi
exit $((failed | rcp_failed))
