#!/usr/bin/env bash
# Wheels larger than what one call to a lent GPU machine carries (64 MiB, the tree included) travel
# in parts over consecutive calls, made while the machine is still warm (it stays so 30 s after a
# call), and are joined there and checked against their SHA-256.
#   here:        scripts/device/stage_wheels.sh split DIR PARTS [MiB]   (DIR -> PARTS/1, PARTS/2, ...; 56 MiB each)
#   there, k-th: scripts/device/stage_wheels.sh receive PARTS/k STAGE   (call k carries PARTS/k)
#   there, last: scripts/device/stage_wheels.sh join STAGE DIR          (the files of DIR, checked)
set -euo pipefail
command=${1:?split, receive or join}
case $command in
split)
    source_dir=${2:?DIR} parts=${3:?PARTS} size=${4:-56}
    rm -rf "$parts" && mkdir -p "$parts"
    tar -cf "$parts/all.tar" -C "$source_dir" .
    sha256sum "$parts/all.tar" | cut -d' ' -f1 > "$parts/all.sha256"
    split -b "${size}m" -d -a 2 "$parts/all.tar" "$parts/chunk."
    rm "$parts/all.tar"
    k=0
    for chunk in "$parts"/chunk.*; do
        k=$((k + 1)) && mkdir -p "$parts/$k" && mv "$chunk" "$parts/$k/"
    done
    mv "$parts/all.sha256" "$parts/$k/"
    echo "$k parts in $parts: carry $parts/1 in the first call, ... $parts/$k in the last"
    ;;
receive)
    mkdir -p "${3:?STAGE}" && cp "${2:?PARTS/k}"/* "$3"/ && ls "$3"
    ;;
join)
    stage=${2:?STAGE} target=${3:?DIR}
    cat "$stage"/chunk.* > "$stage/all.tar"
    [ "$(sha256sum "$stage/all.tar" | cut -d' ' -f1)" = "$(cat "$stage/all.sha256")" ] \
        || { echo "error: the joined parts do not match their SHA-256 (a part missing or twice?)" >&2; exit 1; }
    mkdir -p "$target" && tar -xf "$stage/all.tar" -C "$target" && ls "$target"
    ;;
*) echo "error: unknown command $command (split, receive, join)" >&2; exit 2 ;;
esac
