"""A stand-in for bin/exec.py in the convergence-study tests: takes the same key=value settings and, in a fraction
of a second, writes the MLPerf log a training run would (run_start, evaluations, run_stop) into run.output_dir.

Curves are a function of the seed: at evaluation k (epoch k/2) the cosmic IoU is min(1, k * (0.1 + 0.02 * seed)),
the neutrino IoU 0.6 times it and the non-background accuracy min(1, 1.1 times it); evaluations are a minute
apart. With benchmark=NAME the run stops at the first evaluation meeting NAME's target (status success) or after
8 evaluations (aborted); otherwise it runs all 8 (success). FAKE_FAIL_SEED=S makes seed S exit 1 after printing
an error; FAKE_MISS_SEED=S keeps seed S's curve at a tenth; FAKE_HANG_SEED=S makes seed S log run_start and
wait until interrupted (SIGINT), then log run_stop aborted and exit 130, as bin/exec.py does.
"""
import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from benchmark.rules import get_benchmark  # noqa: E402

EVALUATIONS = 8


def curve(seed: int, k: int, scale: float = 1.0):
    progress = min(1.0, k * (0.1 + 0.02 * seed)) * scale
    return progress, 0.6 * progress, min(1.0, 1.1 * progress)


def main(argv):
    settings = dict(token.split("=", 1) for token in argv)
    seed, folder = int(settings["run.seed"]), settings["run.output_dir"]
    if os.environ.get("FAKE_FAIL_SEED") == str(seed):
        print("error: a simulated failure", file=sys.stderr)
        return 1
    benchmark = settings.get("benchmark")
    target = get_benchmark(benchmark).target if benchmark else None
    os.makedirs(folder, exist_ok=True)
    start = 1_000_000 + seed
    events = [("cosmictagger_benchmark", benchmark or "none", {}, start - 10),
              ("cosmictagger_rules_version", get_benchmark(benchmark).rules_version if benchmark else "none", {},
               start - 10),
              ("implementation", "fake", {}, start - 9), ("seed", seed, {}, start - 8),
              ("global_batch_size", int(settings.get("run.minibatch_size", 4)), {}, start - 7),
              ("run_start", None, {}, start)]
    if os.environ.get("FAKE_HANG_SEED") == str(seed):
        return hang(os.path.join(folder, "mlperf.log"), events)
    status = "success" if target is None else "aborted"
    scale = 0.1 if os.environ.get("FAKE_MISS_SEED") == str(seed) else 1.0
    for k in range(1, EVALUATIONS + 1):
        cosmic, neutrino, accuracy = curve(seed, k, scale)
        metadata = {"epoch_num": k / 2, "step_num": 128 * k, "cosmic_iou": cosmic, "neutrino_iou": neutrino,
                    "non_bkg_accuracy": accuracy}
        events.append(("eval_accuracy", (cosmic + neutrino) / 2, metadata, start + 60_000 * k))
        if target is not None and cosmic >= target.cosmic_iou and neutrino >= target.neutrino_iou \
                and accuracy >= target.non_bkg_accuracy:
            status = "success"
            break
    events.append(("run_stop", None, {"status": status}, events[-1][3] + 500))
    write(os.path.join(folder, "mlperf.log"), events)
    print(f"fake run of seed {seed}: {status}")
    return 0


def write(path, events):
    with open(path, "w") as handle:
        for key, value, metadata, time_ms in events:
            handle.write(":::MLLOG " + json.dumps({"key": key, "value": value, "metadata": metadata,
                                                   "time_ms": time_ms}) + "\n")


def hang(path, events):
    write(path, events)
    try:
        while True:
            time.sleep(0.05)
    except KeyboardInterrupt:
        write(path, events + [("run_stop", None, {"status": "aborted"}, events[-1][3] + 1)])
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
