"""System descriptions: the MLPerf system-description JSON of the machine a benchmark ran on.

    python -m benchmark.systems describe --name NAME [--out DIR] [--submitter S] [--division D] [--status S] [--force]
    python -m benchmark.systems check FILE

`describe` fills every one of the 33 keys that MLPerf's checker requires from what the host
shows (/proc, /sys, lscpu, nvidia-smi, the Python environment); what a host cannot tell
(cooling, networking, memory configuration, ...) says UNKNOWN, for a person to fill in.
Values are strings, numbers included, as in real submissions. `check` validates a file,
and the run scripts call `load_system` before any run.
"""
from __future__ import annotations

import argparse
import datetime
import functools
import importlib.metadata
import importlib.util
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Optional, Sequence

from benchmark.errors import BenchmarkError

# The keys mlperf_logging.system_desc_checker requires, in the order of real submissions.
REQUIRED_KEYS = (
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
)
UNKNOWN = "unknown (not detectable from the host; fill in)"
DEFAULT_SUBMITTER = "CosmicTagger benchmark developers"
DIVISIONS = ("closed", "open")
STATUSES = ("onprem", "cloud", "research", "preview")
REPO = Path(__file__).resolve().parents[1]
DEFAULT_OUT = REPO / "systems"
# The official checker's arguments: HPC rules, the newest HPC ruleset it ships.
CHECKER_ARGS = ("hpc", "3.0.0")
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")
_SIZE_UNITS = ("B", "KiB", "MiB", "GiB", "TiB", "PiB")


# ---------------------------------------------------------------- reading the host

def _read(path) -> Optional[str]:
    try:
        return Path(path).read_text()
    except (OSError, UnicodeDecodeError):
        return None


def _run(command: Sequence[str]) -> Optional[str]:
    """A tool's output, or None when it is absent or fails: detection then says UNKNOWN."""
    if shutil.which(command[0]) is None:
        return None
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=30,
                              env={**os.environ, "LC_ALL": "C"})  # untranslated field names
    except (OSError, subprocess.TimeoutExpired):
        return None
    return done.stdout if done.returncode == 0 else None


def _fields(text: Optional[str]) -> dict:
    """`key: value` lines (lscpu, /proc/cpuinfo, /proc/meminfo) as a dict; the first occurrence wins."""
    found = {}
    for line in (text or "").splitlines():
        key, colon, value = line.partition(":")
        if colon:
            found.setdefault(key.strip(), value.strip())
    return found


def _int(text) -> Optional[int]:
    match = re.match(r"\s*(\d+)", text or "")
    return int(match.group(1)) if match else None


def _size(n_bytes: float) -> str:
    """Binary units with one decimal at most: 23.5 GiB, 64 KiB."""
    unit = 0
    while n_bytes >= 1024 and unit < len(_SIZE_UNITS) - 1:
        n_bytes /= 1024
        unit += 1
    return f"{n_bytes:.1f}".rstrip("0").rstrip(".") + f" {_SIZE_UNITS[unit]}"


def _one_or_all(values: Sequence[str]) -> str:
    """One value when all agree (the usual node), else each distinct one."""
    return " / ".join(dict.fromkeys(values))


# ---------------------------------------------------------------- processors and memory

def _cpuinfo() -> list:
    return [_fields(block) for block in (_read("/proc/cpuinfo") or "").split("\n\n") if block.strip()]


def _processors(lscpu: dict) -> dict:
    """Counts per processor (socket), as MLPerf submissions give them."""
    cpus = _cpuinfo()
    first = cpus[0] if cpus else {}
    sockets = len({cpu["physical id"] for cpu in cpus if "physical id" in cpu}) or _int(lscpu.get("Socket(s)"))
    cores = _int(first.get("cpu cores")) or _int(lscpu.get("Core(s) per socket"))
    vcpus = os.cpu_count()
    return {
        "host_processors_per_node": str(sockets) if sockets else UNKNOWN,
        "host_processor_model_name": first.get("model name") or lscpu.get("Model name") or UNKNOWN,
        "host_processor_core_count": str(cores) if cores else UNKNOWN,
        "host_processor_vcpu_count": str(vcpus // sockets) if vcpus and sockets else UNKNOWN,
        "host_processor_frequency": _frequency(cpus),
        "host_processor_caches": _caches(),
    }


def _frequency(cpus: list) -> str:
    """The maximum clock where cpufreq gives it; else the clock /proc/cpuinfo shows (the nominal one in VMs)."""
    khz = _int(_read("/sys/devices/system/cpu/cpu0/cpufreq/cpuinfo_max_freq"))
    if khz:
        return f"{khz / 1e6:.2f} GHz"
    try:
        mhz = max(float(cpu["cpu MHz"]) for cpu in cpus if "cpu MHz" in cpu)
    except ValueError:  # no such line (e.g. ARM) or not a number
        return UNKNOWN
    return f"{mhz / 1000:.2f} GHz"


def _caches() -> str:
    """Each cache level as size per instance x instances, e.g. "L2 1 MiB x 2".

    Plain lscpu shows totals in new versions and per-instance sizes in old ones, so ask for
    both sizes explicitly (util-linux >= 2.34); else read /sys.
    """
    table = _run(["lscpu", "--caches=NAME,ONE-SIZE,ALL-SIZE", "--bytes"])
    caches = {}
    for name, one, total in (line.split() for line in (table or "").splitlines()[1:] if len(line.split()) == 3):
        if one.isdigit() and total.isdigit() and int(one):
            caches[name] = (int(one), int(total) // int(one))
    return _format_caches(caches or _sysfs_caches())


def _sysfs_caches() -> dict:
    """{name: (bytes per instance, instances)} from /sys, instances told apart by the CPUs sharing them."""
    sizes, sharers = {}, {}
    for index in Path("/sys/devices/system/cpu").glob("cpu[0-9]*/cache/index[0-9]*"):
        level, kind, size, shared = (_read(index / name) for name in ("level", "type", "size", "shared_cpu_list"))
        if not (level and kind and _int(size) and shared):
            continue
        name = "L" + level.strip() + {"Data": "d", "Instruction": "i"}.get(kind.strip(), "")
        sizes[name] = _int(size) * 1024  # sysfs sizes are in KiB ("32K")
        sharers.setdefault(name, set()).add(shared.strip())
    return {name: (sizes[name], len(sharers[name])) for name in sizes}


def _format_caches(caches: dict) -> str:
    return ", ".join(f"{name} {_size(one)} x {count}" for name, (one, count) in sorted(caches.items())) or UNKNOWN


def _memory_capacity() -> str:
    kib = _int(_fields(_read("/proc/meminfo")).get("MemTotal"))
    return f"{_size(kib * 1024)} usable (MemTotal)" if kib else UNKNOWN


# ---------------------------------------------------------------- storage

def _mount_of(path: Path) -> Optional[tuple]:
    """(device, filesystem type, mount point) of the filesystem holding `path`."""
    best = None
    for line in (_read("/proc/self/mounts") or "").splitlines():
        fields = line.split()
        if len(fields) < 3:
            continue
        # /proc/mounts writes spaces and the like as octal escapes (\040)
        device, mount, fstype = (re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), f) for f in fields[:3])
        if Path(mount) in (path, *path.parents) and (best is None or len(mount) >= len(best[2])):
            best = (device, fstype, mount)
    return best


def _storage(path: Path) -> dict:
    mount = _mount_of(path)
    try:
        stat = os.statvfs(path)
        capacity = _size(stat.f_blocks * stat.f_frsize)
    except OSError:
        capacity = UNKNOWN
    return {
        "host_storage_type": f"{mount[1]} filesystem on {mount[0]}, mounted at {mount[2]}" if mount else UNKNOWN,
        "host_storage_capacity": capacity,
    }


# ---------------------------------------------------------------- accelerators

def _nvidia_smi_gpus() -> Optional[list]:
    """(name, memory, max SM clock) per NVIDIA GPU, or None without a working nvidia-smi."""
    out = _run(["nvidia-smi", "--query-gpu=name,memory.total,clocks.max.sm", "--format=csv,noheader"])
    gpus = []
    for line in (out or "").strip().splitlines():
        fields = [field.strip() for field in line.rsplit(",", 2)]
        if len(fields) != 3:  # not a GPU line (a driver message)
            continue
        name, memory, clock = fields
        mib, mhz = _int(memory), _int(clock)  # "[N/A]" where a GPU does not say
        gpus.append((name, _size(mib * 2**20) if mib else UNKNOWN, f"{mhz} MHz" if mhz else UNKNOWN))
    return gpus or None


def _torch_gpus(torch) -> list:
    """GPUs that PyTorch sees (CUDA or ROCm); it does not report their clock."""
    if torch is None or not torch.cuda.is_available():
        return []
    properties = [torch.cuda.get_device_properties(i) for i in range(torch.cuda.device_count())]
    return [(p.name, _size(p.total_memory), UNKNOWN) for p in properties]


def _accelerators(torch) -> dict:
    gpus = _nvidia_smi_gpus()
    if gpus is None:
        gpus = _torch_gpus(torch)
    if not gpus:
        # with no accelerator, "none" is the fact, not a gap
        return {key: "0" if key == "accelerators_per_node" else "none"
                for key in REQUIRED_KEYS if key.startswith("accelerator")}
    names, memories, clocks = zip(*gpus)
    return {
        "accelerators_per_node": str(len(gpus)),
        "accelerator_model_name": _one_or_all(names),
        "accelerator_memory_capacity": _one_or_all(memories),
        "accelerator_frequency": _one_or_all(clocks),
    }


# ---------------------------------------------------------------- software

def _import_torch():
    """PyTorch if it is installed and loads; the harness works without it."""
    if importlib.util.find_spec("torch") is None:
        return None
    try:
        import torch
    except (ImportError, OSError):  # e.g. a CUDA build missing its libraries
        return None
    return torch


@functools.lru_cache(maxsize=1)
def _distributions() -> dict:
    return importlib.metadata.packages_distributions()


def _installed_version(module: str) -> Optional[str]:
    """A module's version without importing it (importing TensorFlow takes seconds and claims GPUs)."""
    if importlib.util.find_spec(module) is None:
        return None
    for distribution in _distributions().get(module, []):
        try:
            return importlib.metadata.version(distribution)
        except importlib.metadata.PackageNotFoundError:
            continue
    return UNKNOWN  # importable, but not from an installed distribution


def _software(torch) -> dict:
    stack = {"python": platform.python_version()}
    frameworks = []
    if torch is not None:
        frameworks.append(f"PyTorch {torch.__version__}")
        stack["torch"] = torch.__version__
        if torch.version.cuda:
            stack["CUDA"] = torch.version.cuda
        if getattr(torch.version, "hip", None):
            stack["ROCm"] = torch.version.hip
        if torch.backends.cudnn.is_available():
            stack["cuDNN"] = str(torch.backends.cudnn.version())
    tensorflow = _installed_version("tensorflow")
    if tensorflow:
        frameworks.append(f"TensorFlow {tensorflow}")
        stack["tensorflow"] = tensorflow
    for module, label in (("numpy", "numpy"), ("h5py", "h5py"), ("mlperf_logging", "mlperf-logging")):
        stack[label] = _installed_version(module) or "not installed"
    stack["kernel"] = platform.release()
    return {"framework": ", ".join(frameworks) or UNKNOWN, "other_software_stack": stack}


def _operating_system() -> str:
    release = {key: value.strip().strip('"') for key, _, value in
               (line.partition("=") for line in (_read("/etc/os-release") or "").splitlines())}
    return release.get("PRETTY_NAME") or f"{platform.system()} {platform.release()}"


def _hw_notes() -> str:
    notes = f"Detected by `python -m benchmark.systems describe` on {datetime.date.today().isoformat()}."
    if "hypervisor" in _fields(_read("/proc/cpuinfo")).get("flags", "").split():
        notes += " A virtual machine (CPU flag 'hypervisor'): processor model and frequency are those the hypervisor exposes."
    return notes


# ---------------------------------------------------------------- the description

def describe(name: str, submitter: str = DEFAULT_SUBMITTER, division: str = "open", status: str = "research") -> dict:
    """The system description of the host this runs on; every required key, in order."""
    torch = _import_torch()
    found = {
        "submitter": submitter,
        "division": division,
        "status": status,
        "system_name": name,
        "number_of_nodes": "1",
        **_processors(_fields(_run(["lscpu"]))),
        "host_memory_capacity": _memory_capacity(),
        **_storage(REPO),
        **_accelerators(torch),
        **_software(torch),
        "operating_system": _operating_system(),
        "hw_notes": _hw_notes(),
        "sw_notes": f"Software versions detected in the Python environment {sys.prefix}.",
    }
    # What no host shows (interconnects, networking, memory configuration, cooling) says so.
    return {key: found.get(key, UNKNOWN) for key in REQUIRED_KEYS}


def load_system(path) -> dict:
    """A system description, checked for every required key; BenchmarkError (one line) otherwise."""
    path = Path(path)
    if not path.exists():
        raise BenchmarkError(f"system description {path} does not exist "
                             "(write one with: python -m benchmark.systems describe --name NAME)")
    try:
        description = json.loads(path.read_bytes())
    except OSError as exc:
        raise BenchmarkError(f"cannot read system description {path}: {exc.strerror}") from None
    except ValueError as exc:  # JSONDecodeError, UnicodeDecodeError
        raise BenchmarkError(f"system description {path} is not valid JSON: {exc}") from None
    if not isinstance(description, dict):
        raise BenchmarkError(f"system description {path} must be a JSON object, not {type(description).__name__}")
    missing = [key for key in REQUIRED_KEYS if key not in description]
    if missing:
        raise BenchmarkError(f"system description {path} lacks {len(missing)} required "
                             f"key{'s' if len(missing) > 1 else ''}: {', '.join(missing)}")
    # MLPerf's tools join these values as text (a number crashes its checker and summarizer)
    not_text = [key for key in REQUIRED_KEYS if not isinstance(description[key], str)
                and not (key == "other_software_stack" and isinstance(description[key], dict))]
    if not_text:
        raise BenchmarkError(f"system description {path}: values must be strings, as in MLPerf submissions "
                             f"(other_software_stack may be an object): {', '.join(not_text)}")
    return description


def official_check(path) -> str:
    """Run mlperf_logging's system_desc_checker; its verdict, or BenchmarkError when it fails.

    The checker exits 0 even when it finds errors, so its output decides.
    """
    if importlib.util.find_spec("mlperf_logging") is None:
        return "skipped (mlperf-logging is not installed)"
    with tempfile.TemporaryDirectory() as scratch:  # it always writes a log file
        try:
            done = subprocess.run(
                [sys.executable, "-m", "mlperf_logging.system_desc_checker", str(path), *CHECKER_ARGS,
                 "--log_output", os.path.join(scratch, "checker.log")],
                capture_output=True, text=True, timeout=120,
            )
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise BenchmarkError(f"mlperf_logging.system_desc_checker could not run: {exc}") from None
    lines = [line.strip() for line in (done.stdout + done.stderr).splitlines() if line.strip()]
    if done.returncode == 0 and any("System description checker passed" in line for line in lines) \
            and not any(line.startswith("ERROR") for line in lines):
        return "passed"
    errors = [line for line in lines if line.startswith("ERROR")]
    reason = errors[0] if errors else (lines[-1] if lines else f"exit status {done.returncode}, no output")
    raise BenchmarkError(f"mlperf_logging.system_desc_checker {' '.join(CHECKER_ARGS)} rejects {path}: {reason}")


# ---------------------------------------------------------------- commands

def cmd_describe(args: argparse.Namespace) -> int:
    path = Path(args.out) / f"{args.name}.json"
    if path.exists() and not args.force:
        raise BenchmarkError(f"{path} exists; pass --force to overwrite it")
    description = describe(args.name, args.submitter, args.division, args.status)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(description, indent=2) + "\n")
    except OSError as exc:
        raise BenchmarkError(f"cannot write {path}: {exc.strerror}") from None
    print(f"wrote {path}")
    _print_unknown(description)
    return 0


def cmd_check(args: argparse.Namespace) -> int:
    description = load_system(args.file)
    verdict = official_check(args.file)
    print(f"{args.file}: all {len(REQUIRED_KEYS)} required keys present; "
          f"official checker ({' '.join(CHECKER_ARGS)}): {verdict}")
    _print_unknown(description)
    return 0


def _print_unknown(description: dict) -> None:
    unknown = [key for key in REQUIRED_KEYS if description[key] == UNKNOWN]
    if unknown:
        print(f"{len(unknown)} fields for a person to fill in: {', '.join(unknown)}")


def _system_name(text: str) -> str:
    if not _NAME.fullmatch(text):
        raise argparse.ArgumentTypeError(f"{text!r} is not a file name of letters, digits, '.', '_' and '-'")
    return text


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(prog="python -m benchmark.systems",
                                  description="MLPerf system descriptions (systems/NAME.json).")
    commands = top.add_subparsers(dest="command", required=True)
    describe_cmd = commands.add_parser("describe", help="describe this host in systems/NAME.json")
    describe_cmd.add_argument("--name", required=True, type=_system_name, help="system name and file name")
    describe_cmd.add_argument("--out", default=str(DEFAULT_OUT), help="folder (default: the repository's systems/)")
    describe_cmd.add_argument("--submitter", default=DEFAULT_SUBMITTER)
    describe_cmd.add_argument("--division", choices=DIVISIONS, default="open")
    describe_cmd.add_argument("--status", choices=STATUSES, default="research")
    describe_cmd.add_argument("--force", action="store_true", help="overwrite an existing file")
    describe_cmd.set_defaults(run=cmd_describe)
    check_cmd = commands.add_parser("check", help="validate a system description")
    check_cmd.add_argument("file")
    check_cmd.set_defaults(run=cmd_check)
    return top


def main(argv: Sequence[str]) -> int:
    args = parser().parse_args(list(argv))
    try:
        return args.run(args)
    except BenchmarkError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_status


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
