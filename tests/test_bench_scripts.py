"""The benchmark scripts under scripts/ run at tiny sizes and refuse bad options in one line (their figures are not checked)."""
import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def script(name, *args, timeout=300):
    return subprocess.run([sys.executable, os.path.join(ROOT, "scripts", name), *args], cwd="/tmp",
                          capture_output=True, text=True, timeout=timeout)


def table_rows(text):
    return [line for line in text.splitlines() if line.startswith("| ") and not line.startswith("| level")
            and not line.startswith("| framework")]


def test_bench_convolutions_times_each_level_from_any_folder():
    done = script("bench_convolutions.py", "--height", "32", "--width", "64", "--images", "3", "--levels", "2",
                  "--dtype", "float32", "--backends", "eager", "--steps", "2")
    assert done.returncode == 0, done.stderr
    rows = table_rows(done.stdout)
    assert [row.split("|")[1:5] for row in rows] == [[" 0 ", " 32x64 ", " 16 ", " eager "],
                                                    [" 1 ", " 16x32 ", " 32 ", " eager "]]


def test_bench_frameworks_prints_a_row_per_cell():
    done = script("bench_frameworks.py", "--frameworks", "torch", "--modes", "2D", "--repeats", "1",
                  "network.network_depth=2", "data.downsample=5")
    assert done.returncode == 0, done.stderr
    (row,) = table_rows(done.stdout)
    cells = [cell.strip() for cell in row.strip("|").split("|")]
    assert cells[:2] == ["torch", "2D"] and all(float(value) > 0 for value in cells[3:])


def test_bench_scripts_refuse_bad_options_in_one_line():
    for name, args, message in [
        ("bench_frameworks.py", ["--repeats", "0"], "error: --repeats 0: must be >= 1"),
        ("bench_convolutions.py", ["--levels", "0"], "error: --images, --levels and --steps must be >= 1"),
    ]:
        done = script(name, *args)
        assert done.returncode == 2 and message in done.stderr and "Traceback" not in done.stderr
