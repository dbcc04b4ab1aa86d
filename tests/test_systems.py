"""System descriptions: describe, check, load_system, and MLPerf's own checker."""
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from benchmark.errors import BenchmarkError
from benchmark.systems import UNKNOWN, describe, load_system, main, official_check

ROOT = Path(__file__).resolve().parents[1]
COMMITTED = ROOT / "systems" / "cpu-2core-debian12.json"

# Written out here on purpose: the list MLPerf's system_desc_checker requires.
MLPERF_KEYS = [
    "submitter", "division", "status", "system_name", "number_of_nodes",
    "host_processors_per_node", "host_processor_model_name", "host_processor_core_count",
    "host_processor_vcpu_count", "host_processor_frequency", "host_processor_caches",
    "host_processor_interconnect", "host_memory_capacity", "host_storage_type",
    "host_storage_capacity", "host_networking", "host_networking_topology",
    "host_memory_configuration", "accelerators_per_node", "accelerator_model_name",
    "accelerator_host_interconnect", "accelerator_frequency", "accelerator_on-chip_memories",
    "accelerator_memory_configuration", "accelerator_memory_capacity", "accelerator_interconnect",
    "accelerator_interconnect_topology", "cooling", "hw_notes", "framework",
    "other_software_stack", "operating_system", "sw_notes",
]
COUNTS = ["number_of_nodes", "host_processors_per_node", "host_processor_core_count",
          "host_processor_vcpu_count", "accelerators_per_node"]


@pytest.fixture(scope="module")
def described(tmp_path_factory):
    out = tmp_path_factory.mktemp("systems")
    assert main(["describe", "--name", "here", "--out", str(out)]) == 0
    return out / "here.json"


def one_error_line(capsys):
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1 and "Traceback" not in err
    return err


def test_describe_writes_every_key_with_numbers_as_strings(described):
    description = json.loads(described.read_text())
    assert len(MLPERF_KEYS) == 33
    assert list(description) == MLPERF_KEYS
    for key, value in description.items():
        assert isinstance(value, dict if key == "other_software_stack" else str), key
    for key in COUNTS:
        assert description[key].isdigit(), (key, description[key])
    assert description["number_of_nodes"] == "1"
    assert (description["submitter"], description["division"], description["status"]) == (
        "CosmicTagger benchmark developers", "open", "research")
    assert description["system_name"] == "here"
    assert description["cooling"] == UNKNOWN
    assert int(description["host_processor_vcpu_count"]) * int(description["host_processors_per_node"]) == os.cpu_count()
    cache = r"L\d[di]? \d+(\.\d)? [KMG]iB x \d+"
    assert re.fullmatch(rf"{cache}(, {cache})*", description["host_processor_caches"]), description["host_processor_caches"]
    stack = description["other_software_stack"]
    assert stack["python"] == "{}.{}.{}".format(*sys.version_info[:3])
    assert stack["mlperf-logging"] == "4.1.68"


def test_describe_refuses_to_overwrite_without_force(described, capsys):
    before = described.read_text()
    assert main(["describe", "--name", "here", "--out", str(described.parent), "--submitter", "Other"]) == 1
    assert "--force" in one_error_line(capsys)
    assert described.read_text() == before
    assert main(["describe", "--name", "here", "--out", str(described.parent), "--submitter", "Other", "--force"]) == 0
    assert json.loads(described.read_text())["submitter"] == "Other"


def test_describe_refuses_a_name_that_is_not_a_file_name(tmp_path):
    with pytest.raises(SystemExit) as exit_info:
        main(["describe", "--name", "../elsewhere", "--out", str(tmp_path)])
    assert exit_info.value.code == 2


def test_describe_reads_gpus_from_nvidia_smi(tmp_path, monkeypatch):
    fake = tmp_path / "nvidia-smi"
    fake.write_text("#!/bin/sh\necho 'NVIDIA H100 80GB HBM3, 81559 MiB, 1980 MHz'\n"
                    "echo 'NVIDIA H100 80GB HBM3, 81559 MiB, 1980 MHz'\n")
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", f"{tmp_path}{os.pathsep}{os.environ['PATH']}")
    description = describe("gpu-node")
    assert description["accelerators_per_node"] == "2"
    assert description["accelerator_model_name"] == "NVIDIA H100 80GB HBM3"
    assert description["accelerator_memory_capacity"] == "79.6 GiB"
    assert description["accelerator_frequency"] == "1980 MHz"
    assert description["accelerator_interconnect"] == UNKNOWN


@pytest.mark.parametrize("path", ["described", "committed"])
def test_check_passes(path, described, capsys):
    file = described if path == "described" else COMMITTED
    assert main(["check", str(file)]) == 0
    assert "official checker (hpc 3.0.0): passed" in capsys.readouterr().out


def test_official_checker_finds_no_errors_in_a_described_file(described, tmp_path):
    done = subprocess.run(
        [sys.executable, "-m", "mlperf_logging.system_desc_checker", str(described), "hpc", "3.0.0",
         "--log_output", str(tmp_path / "log")],
        capture_output=True, text=True, cwd=tmp_path,
    )
    output = done.stdout + done.stderr
    assert "System description checker passed" in output and "ERROR" not in output, output


def test_official_check_reads_the_checkers_output_not_its_exit_status(described, tmp_path):
    description = json.loads(described.read_text())
    del description["cooling"]
    broken = tmp_path / "broken.json"
    broken.write_text(json.dumps(description))
    with pytest.raises(BenchmarkError, match="Missing field cooling"):
        official_check(broken)


def write(tmp_path, text):
    path = tmp_path / "system.json"
    path.write_text(text)
    return path


@pytest.mark.parametrize("case, expected", [
    ("missing file", "does not exist"),
    ("malformed JSON", "is not valid JSON"),
    ("not an object", "must be a JSON object"),
    ("missing keys", "lacks 2 required keys: cooling, sw_notes"),
    ("a number", "values must be strings"),
])
def test_load_system_errors_are_one_line(case, expected, described, tmp_path, capsys):
    description = json.loads(described.read_text())
    if case == "missing file":
        path = tmp_path / "absent.json"
    elif case == "malformed JSON":
        path = write(tmp_path, '{"submitter": ')
    elif case == "not an object":
        path = write(tmp_path, "[]")
    elif case == "missing keys":
        path = write(tmp_path, json.dumps({k: v for k, v in description.items() if k not in ("cooling", "sw_notes")}))
    else:
        path = write(tmp_path, json.dumps({**description, "accelerators_per_node": 4}))
    with pytest.raises(BenchmarkError) as error:
        load_system(path)
    message = str(error.value)
    assert expected in message and str(path) in message and "\n" not in message
    assert main(["check", str(path)]) == 1
    assert expected in one_error_line(capsys)


def test_load_system_returns_the_description():
    assert load_system(COMMITTED)["system_name"] == "cpu-2core-debian12"


def test_module_runs_as_a_command_without_a_traceback(tmp_path):
    done = subprocess.run([sys.executable, "-m", "benchmark.systems", "check", str(tmp_path / "absent.json")],
                          capture_output=True, text=True, cwd=ROOT)
    assert done.returncode == 1
    assert done.stderr.startswith("error: system description") and done.stderr.count("\n") == 1


def test_importing_the_module_imports_no_framework():
    probe = "import sys, benchmark.systems; print(sorted({'torch', 'tensorflow'} & set(sys.modules)))"
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, cwd=ROOT)
    assert done.stdout.strip() == "[]", done.stderr


def test_describe_without_lscpu_or_nvidia_smi_falls_back_to_proc_and_sys(tmp_path, monkeypatch, described):
    monkeypatch.setenv("PATH", str(tmp_path))  # no tools at all
    bare = describe("bare")
    full = json.loads(described.read_text())
    for key in ("host_processors_per_node", "host_processor_core_count", "host_processor_vcpu_count",
                "host_processor_caches", "host_memory_capacity", "host_storage_type"):
        assert bare[key] == full[key], key
