#!/usr/bin/env python3
"""The classic entry point: python bin/exec.py mode=train run.id=X key.sub=value."""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from benchmark.cli import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
