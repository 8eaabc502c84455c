#!/usr/bin/env bash
# `sreg inspect` on a multi-GB SIF must take the same time as on a small one:
# it reads the header, the descriptor table and the metadata objects only.
#
#   scripts/bench/inspect.sh [SIZE]     SIZE of the big partition, default 4G
source "$(dirname "$0")/common.sh"
size="${1:-4G}"
cd "$work"

printf 'Bootstrap: docker\nFrom: alpine:3.20\n\n%%post\n    apk add --no-cache python3\n' > recipe.def
printf '{"org.label-schema.build-arch":"amd64","maintainer":"bench"}' > labels.json
mkdir -p root/etc && echo bench > root/etc/hostname
mksquashfs root small.squashfs -noappend -quiet -all-root >/dev/null
# The big partition: incompressible bytes, so no layer below can shortcut them.
head -c "$size" /dev/urandom > big.part 2>/dev/null || openssl rand -out big.part "$size"

make_sif() { # out partition
    siftool new "$1"
    siftool add "$1" recipe.def --datatype 1
    siftool add "$1" labels.json --datatype 3
    siftool add "$1" "$2" --datatype 4 --parttype 2 --partfs 1 --partarch 2
}
make_sif small.sif small.squashfs
make_sif big.sif big.part
rm big.part
ls -l small.sif big.sif

hyperfine --warmup 3 --runs 30 -N \
    "$SREG inspect small.sif" "$SREG inspect big.sif" \
    "$SREG inspect --json small.sif" "$SREG inspect --json big.sif"

# Cold page cache, where the machine lets us drop it (root on Linux): the
# bytes read from disk are what tells a header-only read from a full one.
if [ -w /proc/sys/vm/drop_caches ]; then
    hyperfine --runs 10 -N --prepare 'sh -c "sync; echo 3 > /proc/sys/vm/drop_caches"' \
        "$SREG inspect small.sif" "$SREG inspect big.sif"
fi
