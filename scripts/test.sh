#!/usr/bin/env bash
# Set up the environment if needed, then run the test suite.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh --dev
exec .venv/bin/python -m pytest -q "$@"
