"""Per-benchmark compliance rules, written from the benchmark definitions."""
from __future__ import annotations

import os
from typing import Dict

from benchmark.rules import BENCHMARKS, Benchmark

RULES_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "rules")

_HEADER = """\
# Written by `python -m benchmark.compliance write-rules` from benchmark/rules.py: do not edit.
# Rules of the `{name}` benchmark ({summary}).
# Keys also defined in common.yaml repeat their REQ (the checker drops common.yaml's messages for them).
"""

# Only the definition's current version passes: a log of another was run under another definition.
_VERSION = """
- KEY:
    NAME:  cosmictagger_rules_version
    REQ:   EXACTLY_ONE
    CHECK: " v['value'] == '{version}'  # the current rules version of the {name} benchmark "
"""

# A run that reached its target says success, one that did not says aborted: both are faithful logs (the score
# counts one aborted run as the slowest, as MLPerf does), while either status with the other outcome fails.
_TARGET = """
- BEGIN:
    CODE: " s.update({{'hit': False, 'status': None}}) "

- KEY:
    NAME:  submission_division
    REQ:   EXACTLY_ONE
    CHECK: " v['value'] == '{division}' "

- KEY:
    NAME:  train_samples
    REQ:   EXACTLY_ONE
    CHECK: " v['value'] == {train} "

- KEY:
    NAME:  eval_samples
    REQ:   EXACTLY_ONE
    CHECK: " v['value'] == {validation} "

- KEY:
    NAME:  image_downsample
    REQ:   EXACTLY_ONE
    CHECK: " v['value'] == {downsample} "

- KEY:
    NAME:  eval_start
    REQ:   AT_LEAST_ONE
    CHECK: " 'epoch_num' in v['metadata'] "

- KEY:
    NAME:  eval_stop
    REQ:   AT_LEAST_ONE
    CHECK: " 'epoch_num' in v['metadata'] "

- KEY:
    NAME:  eval_accuracy
    REQ:   AT_LEAST_ONE
    CHECK:
        - " 'epoch_num' in v['metadata'] "
        - " 'cosmic_iou' in v['metadata'] and 'neutrino_iou' in v['metadata'] and 'non_bkg_accuracy' in v['metadata'] "
    POST:  " s['hit'] = s['hit'] or ({reached}) "

- KEY:
    NAME:  run_stop
    REQ:   EXACTLY_ONE
    CHECK: " v['metadata'].get('status') in ['success', 'aborted'] "
    POST:  " s['status'] = v['metadata'].get('status') "

- END:
    CHECK: " (s['status'] == 'success') == s['hit']  # success exactly when an evaluation reached the target "
"""

_THROUGHPUT = """
- KEY:
    NAME:  submission_division
    REQ:   EXACTLY_ONE
    CHECK: " v['value'] == 'open' "

- KEY:
    NAME:  image_downsample
    REQ:   EXACTLY_ONE
    CHECK: " v['value'] == {downsample} "

- KEY:
    NAME:  run_stop
    REQ:   EXACTLY_ONE
    CHECK: " v['metadata'].get('status') == 'success' "
"""


def _reached(definition: Benchmark) -> str:
    t = definition.target
    return (f"v['metadata']['cosmic_iou'] >= {t.cosmic_iou} and v['metadata']['neutrino_iou'] >= {t.neutrino_iou}"
            f" and v['metadata']['non_bkg_accuracy'] >= {t.non_bkg_accuracy}")


def render(definition: Benchmark) -> str:
    head = _HEADER.format(name=definition.name, summary=definition.summary)
    head += _VERSION.format(name=definition.name, version=definition.rules_version)
    downsample = definition.settings["data.downsample"]
    if definition.target is None:
        return head + _THROUGHPUT.format(downsample=downsample)
    return head + _TARGET.format(
        division="closed" if definition.name == "closed" else "open",
        train=definition.dataset.train.events,
        validation=definition.dataset.validation.events,
        downsample=downsample,
        reached=_reached(definition),
    )


def rendered() -> Dict[str, str]:
    return {f"cosmictagger_{name}.yaml": render(d) for name, d in BENCHMARKS.items()}


def write_rules(directory: str = RULES_DIR) -> None:
    for name, text in rendered().items():
        with open(os.path.join(directory, name), "w") as handle:
            handle.write(text)
