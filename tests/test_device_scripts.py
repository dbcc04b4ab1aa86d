"""scripts/device/pack_wheels.sh: wheels packed for one call to a lent GPU come back with the same contents."""
import os
import subprocess
import sys
import zipfile

import pytest

SCRIPT = os.path.join(os.path.dirname(__file__), os.pardir, "scripts", "device", "pack_wheels.sh")


def _run(*args, **environment):
    env = dict(os.environ, PYTHON=sys.executable, THREADS="1", **environment)
    return subprocess.run(["bash", SCRIPT, *args], capture_output=True, text=True, env=env, timeout=120)


def _wheel(path, files):
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as wheel:
        for name, data in files.items():
            wheel.writestr(name, data)


def _contents(path):
    with zipfile.ZipFile(path) as wheel:
        return {info.filename: wheel.read(info) for info in wheel.infolist()}


@pytest.fixture
def wheels(tmp_path):
    folder = tmp_path / "wheels"
    folder.mkdir()
    files = {
        "demo-1.0-py3-none-any.whl": {"demo/__init__.py": b"VALUE = 1\n" * 500, "demo/data.bin": os.urandom(4096),
                                      "demo-1.0.dist-info/RECORD": b"demo/__init__.py,,\n"},
        "other-2.0-py3-none-any.whl": {"other/core.py": b"def f():\n    return 2\n"},
    }
    for name, members in files.items():
        _wheel(folder / name, members)
    return folder, files


def test_packed_wheels_unpack_with_the_same_members(wheels, tmp_path):
    folder, files = wheels
    archive = tmp_path / "packed.tar.xz"
    packed = _run("pack", str(folder), str(archive))
    assert packed.returncode == 0, packed.stderr
    assert "2 wheels" in packed.stdout
    unpacked = _run("unpack", str(archive), str(tmp_path / "there"))
    assert unpacked.returncode == 0, unpacked.stderr
    for name, members in files.items():
        again = tmp_path / "there" / name
        assert _contents(again) == members
        with zipfile.ZipFile(again) as wheel:  # stored, so that xz sees the bytes themselves
            assert {info.compress_type for info in wheel.infolist()} == {zipfile.ZIP_STORED}


def test_pack_refuses_to_overwrite_and_what_one_call_cannot_carry(wheels, tmp_path):
    folder, _ = wheels
    archive = tmp_path / "packed.tar.xz"
    archive.write_bytes(b"keep")
    refused = _run("pack", str(folder), str(archive))
    assert refused.returncode == 2 and "exists; not overwritten" in refused.stderr
    assert archive.read_bytes() == b"keep"
    too_large = _run("pack", str(folder), str(tmp_path / "big.tar.xz"), MAX_MIB="0")
    assert too_large.returncode == 1 and "too much for one call" in too_large.stderr
    assert not (tmp_path / "big.tar.xz").exists() and not (tmp_path / "big.tar.xz.partial").exists()
    empty = tmp_path / "empty"
    empty.mkdir()
    nothing = _run("pack", str(empty), str(tmp_path / "none.tar.xz"))
    assert nothing.returncode != 0 and "no *.whl" in nothing.stderr
