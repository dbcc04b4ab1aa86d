"""Benchmark definitions on the command line, dataset verification, and run_benchmark.sh refusals."""
import os
import shutil
import subprocess

import pytest
from tiny import require_sample

from benchmark import config
from benchmark.datasets import verify_benchmark_dataset
from benchmark.errors import ConfigError, DataError
from benchmark.rules import BENCHMARKS, MINI, Benchmark, Dataset, DatasetFile, get_benchmark

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_a_benchmark_fixes_its_settings_and_keeps_tunable_defaults():
    cfg = config.load(["benchmark=mini", "run.id=x", "run.minibatch_size=8", "run.precision=bfloat16"])
    assert cfg.run.benchmark == "mini" and cfg.network.name == "a21" and cfg.network.network_depth == 4
    assert cfg.data.downsample == 3 and cfg.run.validation.value == "full"
    assert cfg.run.minibatch_size == 8 and cfg.mode.optimizer.learning_rate == pytest.approx(0.001)
    throughput = config.load(["benchmark=throughput", "run.id=x"])
    assert throughput.run.iterations == BENCHMARKS["throughput"].steps and throughput.data.worker_processes
    assert not config.load(["benchmark=throughput", "run.id=x", "data.worker_processes=false"]).data.worker_processes


@pytest.mark.parametrize(
    "tokens, fragment",
    [
        (["benchmark=mini", "network.n_initial_filters=4"], "network.n_initial_filters is fixed by the mini benchmark"),
        (["benchmark=closed", "data.downsample=2"], "data.downsample is fixed by the closed benchmark"),
        (["benchmark=closed", "network=a21"], "network=a21: the closed benchmark fixes network"),
        (["benchmark=mini", "mode.optimizer.learning_rate=-1"], "learning_rate=-1.0 breaks the mini benchmark's rule"),
        (["benchmark=mini", "mode=inference"], "benchmark=mini runs in mode=train"),
        (["benchmark=fast"], "unknown benchmark 'fast'"),
    ],
)
def test_settings_a_benchmark_does_not_allow(tokens, fragment):
    with pytest.raises(ConfigError, match=fragment):
        config.load(["run.id=x", *tokens])


def test_every_benchmark_has_runs_and_a_cadence_or_steps():
    for name, definition in BENCHMARKS.items():
        assert get_benchmark(name) is definition and definition.runs >= 1
        assert (definition.target is not None and definition.max_epochs > 0) or definition.steps > 0


def _definition(tmp_path, events, sha256=None):
    shutil.copy(require_sample(), tmp_path / "cosmic_tagging_train.h5")
    shutil.copy(require_sample(), tmp_path / "cosmic_tagging_val.h5")
    dataset = Dataset(DatasetFile("cosmic_tagging_train.h5", events, sha256), DatasetFile("cosmic_tagging_val.h5", 5),
                      DatasetFile("cosmic_tagging_test.h5", 5))
    return Benchmark(name="test", summary="", settings=MINI.settings, tunables=MINI.tunables, dataset=dataset,
                     target=MINI.target, max_epochs=1)


def test_dataset_verification(tmp_path):
    cfg = config.load(["run.id=x", f"data.data_directory={tmp_path}"])
    from benchmark.data.dataset import sha256

    verify_benchmark_dataset(cfg, _definition(tmp_path, 5, sha256(require_sample())))  # passes
    with pytest.raises(DataError, match="5 events, but the test benchmark defines 1024"):
        verify_benchmark_dataset(cfg, _definition(tmp_path, 1024))
    with pytest.raises(DataError, match="sha256 does not match the test benchmark's definition"):
        verify_benchmark_dataset(cfg, _definition(tmp_path, 5, "0" * 64))
    definition = _definition(tmp_path, 5, sha256(require_sample()))
    os.remove(tmp_path / "cosmic_tagging_val.h5")
    with pytest.raises(DataError, match="cosmic_tagging_val.h5: missing"):
        verify_benchmark_dataset(cfg, definition)


def run_script(*args, cwd=ROOT):
    return subprocess.run(["bash", "run_benchmark.sh", *args], cwd=cwd, capture_output=True, text=True, timeout=600)


@pytest.mark.parametrize(
    "args, fragment",
    [
        (["--benchmark", "fastest"], "error: unknown benchmark 'fastest'"),
        (["--runs", "0"], "error: --runs must be a positive integer"),
        (["--frobnicate"], "error: unknown option '--frobnicate'"),
        (["--system", "no-such-system"], "systems/no-such-system.json does not exist"),
        (["--benchmark", "closed", "--system", "cpu-2core-debian12"], "the closed benchmark needs --data-dir"),
        (["--ranks", "4", "--instances", "3"], "error: --instances must be a positive integer that divides --ranks (4)"),
        (["--framework", "jax"], "error: unknown framework 'jax'"),
        (["--distributed-mode", "mpi"], "error: unknown distributed mode 'mpi'"),
        (["--launcher", "torchrun", "--ranks", "4", "--ranks-per-node", "2"],
         "--launcher torchrun starts one node here"),
        (["--optimized", "--conv-mode", "sparse"], "there is an optimized path for PyTorch 2D and 3D only"),
        (["--launcher"], "error: --launcher needs a value"),
        (["--runs", ""], "error: --runs needs a value"),
    ],
)
def test_run_benchmark_refuses_bad_use(args, fragment):
    proc = run_script(*args)
    assert proc.returncode == 2
    assert fragment in proc.stderr
    assert "Traceback" not in proc.stderr


def test_run_benchmark_checks_the_settings_before_it_writes_anything():
    before = sorted(os.listdir(os.path.join(ROOT, "systems")))
    proc = run_script("--benchmark", "throughput", "--", "network.n_initial_filters=3")  # no --system: this host
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert proc.stderr.strip().splitlines() == [proc.stderr.strip()]  # one line
    assert proc.stderr.startswith("error: network.n_initial_filters is fixed by the throughput benchmark")
    assert sorted(os.listdir(os.path.join(ROOT, "systems"))) == before  # the host was not described


def test_config_check_validates_without_running(capsys):
    from benchmark.config.__main__ import main as config_main

    assert config_main(["check", "run.id=x", "benchmark=mini", "run.minibatch_size=8"]) == 0
    assert capsys.readouterr().out == "settings accepted\n"
    assert config_main(["check", "run.id=x", "run.precision=fp8"]) == 2
    assert capsys.readouterr().err.startswith("error: run.precision: 'fp8' is not allowed")
    assert config_main([]) == 2 and capsys.readouterr().err.startswith("usage: python -m benchmark.config check")


@pytest.mark.parametrize("name", sorted(BENCHMARKS))
def test_every_setting_run_benchmark_passes_is_one_each_benchmark_lets_a_site_tune(name):
    import re

    script = open(os.path.join(ROOT, "run_benchmark.sh")).read()
    keys = set(re.findall(r"\b([a-z_]+\.[a-z_.]+)=", script))
    assert {"run.distributed", "run.instances", "framework.distributed_mode", "framework.optimized"} <= keys
    tunable = {t.key for t in get_benchmark(name).tunables}
    assert keys - {"run.id", "run.output_dir"} <= tunable, keys - tunable
    # and the combination a multi-rank, optimized run sends is accepted as a whole
    config.load([f"benchmark={name}", "run.id=x", "run.distributed=true", "framework.distributed_mode=horovod",
                 "run.instances=2", "framework.optimized=true", "network.conv_mode=3D"])


def test_run_benchmark_refuses_an_unwritable_results_folder(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    proc = run_script("--system", "cpu-2core-debian12", "--results", str(blocker / "results"))
    assert proc.returncode == 2 and "is not writable" in proc.stderr


def test_run_benchmark_refuses_a_malformed_system_description(tmp_path):
    bad = tmp_path / "broken.json"
    bad.write_text("{not json")
    proc = run_script("--system", str(bad))
    assert proc.returncode == 2 and "broken.json" in proc.stderr and "JSON" in proc.stderr


def test_the_example_job_scripts_use_options_run_benchmark_has():
    """The Slurm and PBS examples (not runnable here) pass every rank of the job and only options that exist."""
    import re

    options = set(re.findall(r"^\s+(--[a-z-]+)", run_script("--help").stdout, flags=re.M))
    examples = os.path.join(ROOT, "systems", "examples")
    for name in os.listdir(examples):
        text = open(os.path.join(examples, name)).read().replace("\\\n", " ")
        calls = [line for line in text.splitlines() if "./run_benchmark.sh" in line]
        assert calls, name
        for call in calls:
            used = set(re.findall(r"(--[a-z-]+)", call))
            assert used <= options, (name, used - options)
            assert "--ranks " in call and "--ranks-per-node" in call, (name, call)
        subprocess.run(["bash", "-n", os.path.join(examples, name)], check=True)
