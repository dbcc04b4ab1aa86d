#!/usr/bin/env bash
# Wheels for a lent GPU machine, packed to fit the one call that uses them (a call carries 64 MiB, the
# tree included). Wheels are deflate zips; stored uncompressed and then xz-compressed together they
# shrink much further (spconv-cu124 + cumm-cu124 + their pure-Python needs: from 95 MB to 40 MB), so
# no staging over several calls is needed. The wheels come back byte-identical in content (pip checks
# each file against the wheel's RECORD on install).
#   here:  scripts/device/pack_wheels.sh pack DIR ARCHIVE.tar.xz   (every DIR/*.whl; refused above MAX_MIB, 60)
#   there: scripts/device/pack_wheels.sh unpack ARCHIVE.tar.xz DIR  (the wheels, ready for pip install)
set -euo pipefail
command=${1:?pack or unpack}
case $command in
pack)
    source_dir=${2:?DIR} archive=${3:?ARCHIVE.tar.xz}
    [ ! -e "$archive" ] || { echo "error: $archive exists; not overwritten" >&2; exit 2; }
    stored=$(mktemp -d) && trap 'rm -rf "$stored"' EXIT
    ${PYTHON:-python3} - "$source_dir" "$stored" <<'EOF'
import pathlib, sys, zipfile
source, target = map(pathlib.Path, sys.argv[1:])
wheels = sorted(source.glob("*.whl"))
if not wheels:
    sys.exit(f"error: no *.whl in {source}")
for wheel in wheels:
    with zipfile.ZipFile(wheel) as inside, zipfile.ZipFile(target / wheel.name, "w", zipfile.ZIP_STORED) as out:
        for info in inside.infolist():
            data = inside.read(info)  # before the type changes: read() decompresses by it
            info.compress_type = zipfile.ZIP_STORED
            out.writestr(info, data)
EOF
    tar -cf - -C "$stored" . | xz -9e -T"${THREADS:-0}" > "$archive.partial"
    mib=$(( $(stat -c %s "$archive.partial") / 1048576 ))
    if [ "$mib" -ge "${MAX_MIB:-60}" ]; then
        rm -f "$archive.partial"
        echo "error: packed wheels take $mib MiB, too much for one call (MAX_MIB=${MAX_MIB:-60})" >&2
        exit 1
    fi
    mv "$archive.partial" "$archive"
    echo "$archive: $(ls "$source_dir"/*.whl | wc -l) wheels in $mib MiB"
    ;;
unpack)
    archive=${2:?ARCHIVE.tar.xz} target=${3:?DIR}
    mkdir -p "$target" && tar -xJf "$archive" -C "$target" && ls "$target"
    ;;
*) echo "error: unknown command $command (pack, unpack)" >&2; exit 2 ;;
esac
