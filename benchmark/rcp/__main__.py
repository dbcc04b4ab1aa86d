"""python -m benchmark.rcp write ... | check ...: see benchmark/rcp/__init__.py.

Exit status: 0 written or passed; 1 refused or failed; 2 bad input (no such folder, no logs, an unreadable log,
an unknown benchmark), each said in one line.
"""
from __future__ import annotations

import argparse
import os
import re
import sys
from typing import List, Sequence

from benchmark.errors import BenchmarkError
from benchmark.rcp import BadInput
from benchmark.rcp.check import check_folder, points_table, report
from benchmark.rcp.files import build, load, rcp_definition, rcp_path, shown, write
from benchmark.rcp.points import FULL, PRUNED
from benchmark.rules import get_benchmark

# Logs a folder holds: stored results and run folders' MLPerf logs (numbered when a run.id was run again).
_LOG_FILE = re.compile(r"^(result_\d+\.txt|mlperf(\.\d+)?\.log)$")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m benchmark.rcp", description="MLPerf's reference convergence "
                                     "points: write them, check against them.")
    commands = parser.add_subparsers(dest="command", required=True)
    writing = commands.add_parser("write", help="build a benchmark's RCP file from reference runs' MLPerf logs")
    writing.add_argument("logs", nargs="+", metavar="LOG_OR_DIR",
                         help="MLPerf logs, or folders searched for result_<i>.txt and mlperf.log files")
    writing.add_argument("--benchmark", required=True)
    writing.add_argument("--rules-version", help="the rules version the runs must have logged (default: the current)")
    writing.add_argument("--out", metavar="FILE", help="default: benchmark/rcps/<benchmark>-<rules version>.json")
    writing.add_argument("--force", action="store_true", help="replace an existing RCP file")
    checking = commands.add_parser("check", help="hold a submission's runs to its benchmark's RCPs (exit 0: passed)")
    checking.add_argument("folder", metavar="RESULT_DIR", help="a folder of result_<i>.txt logs")
    checking.add_argument("--rcps", metavar="FILE", help="default: benchmark/rcps/<benchmark>-<rules version>.json")
    checking.add_argument("--rcp-pass", choices=(PRUNED, FULL), default=PRUNED,
                          help=f"MLPerf's --rcp_pass (default {PRUNED}, as its package checker)")
    checking.add_argument("--if-complete", action="store_true",
                          help="with fewer runs than a submission needs, say so and exit 0 (run_benchmark.sh)")
    return parser


def find_logs(paths: Sequence[str]) -> List[str]:
    """The given logs, and the logs under the given folders (in path order, numbers by value)."""
    logs = []
    for path in paths:
        if os.path.isdir(path):
            found = sorted((os.path.join(folder, name) for folder, _, names in os.walk(path) for name in names
                            if _LOG_FILE.match(name)), key=_natural)
            if not found:
                raise BadInput(f"no MLPerf logs (result_<i>.txt, mlperf.log) under {path}")
            logs += found
        elif os.path.isfile(path):
            logs.append(path)
        else:
            raise BadInput(f"no such log or folder {path}")
    return logs


def _natural(path: str):
    """Sort key: result_2.txt before result_10.txt."""
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", path)]


def main(argv: Sequence[str]) -> int:
    args = _parser().parse_args(argv)
    try:
        if args.command == "write":
            version = args.rules_version or get_benchmark(args.benchmark).rules_version
            definition = rcp_definition(args.benchmark, version)
            logs = find_logs(args.logs)
            entries = build(args.benchmark, version, logs)
            path = args.out or rcp_path(args.benchmark, version)
            replaced = write(path, entries, args.force)
            print(f"{'replaced' if replaced else 'wrote'} {shown(path)}: {len(logs)} reference runs, batch sizes "
                  f"{', '.join(str(e['BS']) for e in entries.values())}")
            print(points_table(load(path, args.benchmark, definition.runs)), end="")
            return 0
        outcome = check_folder(args.folder, args.rcps, args.rcp_pass)
        if args.if_complete and outcome.incomplete:
            print(f"RCP check: not yet a submission ({len(outcome.runs)} of {outcome.required} runs under the current "
                  f"rules stored in {args.folder}); it is checked once there are {outcome.required}")
            return 0
        print(report(outcome, f"RCP check of {args.folder}"), end="")
        return 0 if outcome.passed else 1
    except BenchmarkError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_status


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
