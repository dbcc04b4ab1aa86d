"""The convergence study commands.

    python -m benchmark.convergence study --benchmark mini --seeds 10 --out DIR [--set key=value ...]
                                          [--first-seed K] [--parallel P]
    python -m benchmark.convergence study --benchmark mini --explore [--epochs E] [--eval-every X] --seeds N --out DIR
    python -m benchmark.convergence report DIR [--target cosmic,neutrino,accuracy]

Bad input is refused in one line (exit status 2) before anything is written.
"""
from __future__ import annotations

import argparse
import sys
from typing import NoReturn, Sequence

from benchmark.convergence import report
from benchmark.convergence.spec import plan
from benchmark.convergence.study import run_study
from benchmark.errors import BenchmarkError, ConfigError


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:  # one line, not argparse's usage block
        print(f"error: {message} (see {self.prog} --help)", file=sys.stderr)
        sys.exit(2)


def _positive(kind, what: str):
    """An argparse type: a number of `kind` above 0."""
    def parse(text: str):
        try:
            value = kind(text)
        except ValueError:
            value = 0
        if not value > 0:
            raise argparse.ArgumentTypeError(f"'{text}' is not a positive {what}")
        return value

    return parse


_positive_int, _positive_float = _positive(int, "integer"), _positive(float, "number")


def _parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="python -m benchmark.convergence",
                     description="Run seeds of a benchmark definition and report the spread of their convergence.")
    commands = parser.add_subparsers(dest="command", required=True)
    study = commands.add_parser("study", help="run N seeds (skips those finished before); then print the report")
    study.add_argument("--benchmark", required=True, help="the definition (benchmark.rules), e.g. mini")
    study.add_argument("--seeds", required=True, type=_positive_int, help="how many seeds: K, K+1, ... K+N-1")
    study.add_argument("--first-seed", type=_positive_int, default=1, metavar="K", help="the first seed (default 1)")
    study.add_argument("--out", required=True, metavar="DIR", help="the study's folder (kept across starts)")
    study.add_argument("--set", dest="sets", action="extend", nargs="+", default=[], metavar="KEY=VALUE",
                       help="settings for every run; under the benchmark's rules only tunable ones")
    study.add_argument("--parallel", type=_positive_int, default=1, metavar="P",
                       help="runs at once, sharing the cores (default 1; time-to-train is comparable only at 1)")
    study.add_argument("--explore", action="store_true",
                       help="the definition's settings as plain runs that evaluate the whole validation set at a "
                            "fixed cadence and never stop at the target (fixed settings may be --set)")
    study.add_argument("--epochs", type=_positive_float, help="explore: epochs per run (default: the epoch limit)")
    study.add_argument("--eval-every", type=_positive_float, metavar="EPOCHS",
                       help="explore: epochs between evaluations (default: the definition's cadence)")
    show = commands.add_parser("report", help="write DIR/report.md and DIR/curves.png and print the table")
    show.add_argument("folder", metavar="DIR")
    show.add_argument("--target", type=str, metavar="COSMIC,NEUTRINO,ACCURACY",
                      help="judge the runs by this target instead of the study's")
    return parser


def main(argv: Sequence[str]) -> int:
    try:
        args = _parser().parse_args(argv)
    except SystemExit as exit:  # --help, or a refusal already printed
        return int(exit.code or 0)
    try:
        if args.command == "study":
            return _study(args)
        target = report.parse_target(args.target) if args.target else None
        text, written = report.write(args.folder, target)
        print(text, end="")
        print(f"wrote {', '.join(written)}", file=sys.stderr)
        return 0
    except BenchmarkError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_status
    except KeyboardInterrupt:
        print("interrupted: the runs in progress stay in running/; the next start keeps them aside and runs their "
              "seeds again", file=sys.stderr)
        return 130


def _study(args: argparse.Namespace) -> int:
    study = plan(args.benchmark, args.sets, explore=args.explore, epochs=args.epochs, eval_every=args.eval_every)
    seeds = range(args.first_seed, args.first_seed + args.seeds)
    print(f"study in {args.out}: {study.spec.describe()}; seeds {seeds.start}-{seeds.stop - 1}, "
          f"{args.parallel} at a time", flush=True)
    run_study(study, args.out, list(seeds), parallel=args.parallel)
    try:
        text, written = report.write(args.out)
    except ConfigError:  # nothing finished (every seed failed or was interrupted)
        return 0
    print(text, end="")
    print(f"wrote {', '.join(written)}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
