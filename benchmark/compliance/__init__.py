"""The benchmark's MLPerf compliance ruleset and the official checker that applies it.

`rules/common.yaml` holds what every CosmicTagger log must satisfy; the
per-benchmark files `rules/cosmictagger_<name>.yaml` are written from the
definitions in `benchmark/rules.py` (`python -m benchmark.compliance
write-rules`), so the checked sample counts, targets and rules versions cannot
drift from the rules the harness applies (a test compares them). The folder
is self-contained: common.yaml finds the per-benchmark files next to itself,
so the official checker needs only `--config <folder>/common.yaml`.
"""
