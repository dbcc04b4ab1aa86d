"""python -m benchmark.compliance check LOG [LOG ...] | write-rules"""
import argparse
import sys

from benchmark.compliance.checker import check
from benchmark.compliance.ruleset import write_rules
from benchmark.errors import BenchmarkError


def main(argv) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmark.compliance")
    sub = parser.add_subparsers(dest="command", required=True)
    checking = sub.add_parser("check", help="run the official checker with this benchmark's ruleset")
    checking.add_argument("logs", nargs="+")
    checking.add_argument("--verbose", action="store_true", help="print the checker's whole output")
    sub.add_parser("write-rules", help="rewrite rules/cosmictagger_<name>.yaml from benchmark/rules.py")
    args = parser.parse_args(argv)
    if args.command == "write-rules":
        write_rules()
        return 0
    failed = 0
    try:
        for log in args.logs:
            result = check(log)
            print(f"{log}: {'compliant' if result.passed else 'NOT compliant: ' + result.problems()}")
            if args.verbose:
                print(result.output)
            failed += not result.passed
    except BenchmarkError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 1 if failed else 0


sys.exit(main(sys.argv[1:]))
