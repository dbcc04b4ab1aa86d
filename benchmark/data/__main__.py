"""python -m benchmark.data: see benchmark/data/commands.py."""
from benchmark.data.commands import entry_point

entry_point()
