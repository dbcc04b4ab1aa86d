"""Convergence studies: N seeds of a benchmark definition, their curves, epochs and time to the target, and
their spread (see __main__ for the commands).

* spec: what a study runs and each seed's bin/exec.py command, checked as the harness checks it;
* study: running the seeds, publishing each finished run once, keeping interrupted ones aside;
* records: a finished run as its MLPerf log tells it (record.json);
* stats, report: epochs to a target, spread statistics, knees; report.md and curves.png.
"""
